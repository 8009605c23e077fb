"""Read a Prometheus text exposition in tests: sum a metric's samples over matching labels."""

from __future__ import annotations

import httpx
from prometheus_client.parser import text_string_to_metric_families


def samples(text: str) -> list[tuple[str, dict[str, str], float]]:
    out = []
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out.append((sample.name, dict(sample.labels), float(sample.value)))
    return out


def total(text: str, name: str, **labels: str) -> float:
    """Sum of the samples called ``name`` whose labels include ``labels``."""
    return sum(
        value
        for sample_name, sample_labels, value in samples(text)
        if sample_name == name and all(sample_labels.get(k) == v for k, v in labels.items())
    )


def label_values(text: str, name: str, label: str) -> set[str]:
    return {
        sample_labels[label]
        for sample_name, sample_labels, _ in samples(text)
        if sample_name == name and label in sample_labels
    }


def scrape(base_url: str) -> str:
    response = httpx.get(f"{base_url}/metrics", timeout=10)
    response.raise_for_status()
    return response.text
