"""Send realistic traffic to a running service, optionally drifted, optionally labeled.

Rows are drawn as they are, without noise, so normal traffic is what the drift and data-quality
tests expect of it: rows like those the model was trained on. Most come from the production
model's reference sample; when the model keeps a holdout (rows it did not train on,
``vigil.registry.holdout``), that share of the rows the holdout had in the data comes from it.
``--drift one`` shifts one numeric feature by ``--shift`` standard deviations, ``--drift most``
shifts most numeric features.
``--feedback SHARE`` then sends the true labels of that share of the answered holdout rows to
``/feedback``, so live quality is measured on rows the model did not train on; a model without
a holdout gets its reference rows' labels instead, and the output says that live figures are
then optimistic. ``--wrong-labels SHARE`` makes that share of them wrong (another class, or the
value moved by three standard deviations), which ModelQualityDrop should see.
Works for whatever model is production: classifier or regressor (``vigil.tasks``).
"""

from __future__ import annotations

import asyncio
import math
import time
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Annotated

import numpy as np
import pandas as pd
import typer

# Said when live quality can only be measured on the rows the model was trained on.
OPTIMISTIC = (
    "this model keeps no holdout, so labels come from its training rows and live quality "
    "figures are optimistic"
)


class Drift(StrEnum):
    none = "none"
    one = "one"
    most = "most"


@dataclass
class Tally:
    sent: int = 0
    ok: int = 0
    errors: dict[int | str, int] = field(default_factory=dict)
    prediction_ids: list[str] = field(default_factory=list)
    answered: list[int] = field(default_factory=list)  # row index of each prediction id


def drifted_features(numeric: list[str], drift: Drift, feature: str | None = None) -> list[str]:
    if drift is Drift.none or not numeric:
        return []
    if drift is Drift.one:
        return [feature or numeric[0]]
    return numeric[: max(1, math.ceil(len(numeric) * 0.7))]


def make_rows(reference: pd.DataFrame, schema, n: int, **options) -> list[dict]:
    """``n`` request instances drawn from ``reference`` (and the holdout), shifted per
    ``drift`` (``make_labeled_rows``' options)."""
    return make_labeled_rows(reference, schema, n, **options)[0]


def make_labeled_rows(
    reference: pd.DataFrame,
    schema,
    n: int,
    *,
    drift: Drift = Drift.none,
    feature: str | None = None,
    shift: float = 1.0,
    seed: int = 0,
    holdout: tuple[pd.DataFrame, pd.Series] | None = None,
) -> tuple[list[dict], list]:
    """``make_rows`` and each row's label, None where it has none.

    Rows are drawn with replacement and sent unchanged: noise would move discrete columns and
    values at their bounds, which the drift and data-quality tests would rightly see. With a
    ``holdout`` (features, labels), each row comes from it with the share the holdout has
    among the two, and only those rows carry labels; without one, the reference's labels."""
    from vigil.registry.store import LABEL_COLUMN

    rng = np.random.default_rng(seed)
    pool = reference[schema.names]
    if holdout is not None:
        unseen, truth = holdout
        pool = pd.concat([pool, unseen[schema.names]], ignore_index=True)
        known = [None] * len(reference) + list(truth)
        from_holdout = rng.random(n) < len(unseen) / len(pool)
        picks = np.where(
            from_holdout,
            len(reference) + rng.integers(0, len(unseen), size=n),
            rng.integers(0, len(reference), size=n),
        )
    else:
        known = reference[LABEL_COLUMN].tolist() if LABEL_COLUMN in reference else []
        known = known or [None] * len(reference)
        picks = rng.integers(0, len(reference), size=n)
    rows = pool.iloc[picks].reset_index(drop=True)
    labels = [known[i] for i in picks]
    for name in drifted_features(schema.numeric, drift, feature):
        std = float(reference[name].std(skipna=True) or 1.0)
        rows[name] = rows[name] + shift * std
    records = rows.astype(object).where(rows.notna(), None).to_dict(orient="records")
    return records, labels


def stored_holdout(bundle) -> tuple[pd.DataFrame, pd.Series] | None:
    """The rows ``bundle``'s model did not train on, with their labels (None: it keeps none)."""
    from vigil.registry.holdout import from_contract

    return from_contract(bundle.contract)


async def send(
    url: str,
    rows: list[dict],
    *,
    batch: int = 1,
    concurrency: int = 4,
    api_key: str | None = None,
    timeout: float = 30.0,
) -> Tally:
    import httpx

    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    chunks = [rows[i : i + batch] for i in range(0, len(rows), batch)]
    tally = Tally()
    queue: asyncio.Queue = asyncio.Queue()
    for i, chunk in enumerate(chunks):
        queue.put_nowait((i * batch, chunk))

    async def worker(client: httpx.AsyncClient) -> None:
        while not queue.empty():
            first, chunk = queue.get_nowait()
            tally.sent += len(chunk)
            try:
                resp = await client.post(f"{url}/predict", json={"instances": chunk})
            except httpx.HTTPError as exc:
                key = type(exc).__name__
                tally.errors[key] = tally.errors.get(key, 0) + 1
                continue
            if resp.status_code == 200:
                tally.ok += len(chunk)
                tally.prediction_ids.extend(resp.json()["prediction_ids"])
                tally.answered.extend(range(first, first + len(chunk)))
            else:
                tally.errors[resp.status_code] = tally.errors.get(resp.status_code, 0) + 1

    async with httpx.AsyncClient(headers=headers, timeout=timeout) as client:
        await asyncio.gather(*(worker(client) for _ in range(concurrency)))
    return tally


def feedback_labels(
    tally: Tally, labels: list, task, classes, *, share: float, wrong: float, seed: int = 0
) -> list[dict]:
    """``/feedback`` entries for ``share`` of the answered rows, ``wrong`` of them wrong."""
    rng = np.random.default_rng(seed + 1)
    known = [
        (pid, labels[row]) for pid, row in zip(tally.prediction_ids, tally.answered, strict=True)
    ]
    known = [(pid, label) for pid, label in known if label is not None]
    numbers = [float(v) for _, v in known] if not classes else []
    spread = 3 * float(np.std(numbers)) if numbers else 0.0
    out = []
    for pid, value in known:
        if rng.random() >= share:
            continue
        label = task.reference_label(value, classes)
        if rng.random() < wrong:
            label = task.wrong_label(label, classes, spread)
        out.append({"prediction_id": pid, "label": label})
    return out


async def send_feedback(
    url: str, entries: list[dict], *, batch: int = 500, api_key: str | None = None
) -> int:
    """Post ``entries`` in batches; returns how many were accepted."""
    import httpx

    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    accepted = 0
    async with httpx.AsyncClient(headers=headers, timeout=30) as client:
        for i in range(0, len(entries), batch):
            resp = await client.post(f"{url}/feedback", json={"labels": entries[i : i + batch]})
            resp.raise_for_status()
            accepted += resp.json()["accepted"]
    return accepted


def main(
    rows: Annotated[int, typer.Option(min=1, help="Instances to send")] = 2000,
    batch: Annotated[int, typer.Option(min=1, help="Instances per request")] = 10,
    concurrency: Annotated[int, typer.Option(min=1, help="Requests in flight")] = 4,
    drift: Annotated[Drift, typer.Option(help="none, one feature, or most features")] = Drift.none,
    feature: Annotated[str | None, typer.Option(help="The feature --drift one shifts")] = None,
    shift: Annotated[float, typer.Option(help="Shift in standard deviations")] = 1.0,
    seed: Annotated[int, typer.Option(help="Seed for the sampled rows")] = 0,
    url: Annotated[str | None, typer.Option(help="Service URL (default from settings)")] = None,
    feedback: Annotated[
        float,
        typer.Option(
            min=0.0,
            max=1.0,
            help="Share of answered holdout rows (rows the model did not train on) whose "
            "labels to send; a model without a holdout: of all answered rows",
        ),
    ] = 0.0,
    wrong_labels: Annotated[
        float, typer.Option(min=0.0, max=1.0, help="Share of those labels made wrong")
    ] = 0.0,
) -> None:
    """Send traffic drawn from the production model's reference sample."""
    from vigil.registry.store import NoProductionModel, Registry
    from vigil.settings import get_settings

    settings = get_settings()
    try:
        bundle = Registry(settings).load_production()
    except NoProductionModel as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    schema = bundle.schema
    if feature is not None and feature not in schema.numeric:
        typer.echo(f"error: --feature {feature!r} is not a numeric feature", err=True)
        raise typer.Exit(2)
    holdout = stored_holdout(bundle)
    records, labels = make_labeled_rows(
        bundle.reference,
        schema,
        rows,
        drift=drift,
        feature=feature,
        shift=shift,
        seed=seed,
        holdout=holdout,
    )
    target = url or f"http://{settings.host}:{settings.port}"
    key = settings.api_key.get_secret_value() if settings.api_key else None
    shifted = drifted_features(schema.numeric, drift, feature)
    typer.echo(
        f"sending {rows} rows to {target} in requests of {batch}"
        + (f", shifted by {shift} sd: {', '.join(shifted)}" if shifted else "")
    )
    if holdout is not None:
        unseen = sum(label is not None for label in labels)
        typer.echo(f"{unseen} of them from the {len(holdout[0])} rows the model did not train on")
    elif feedback:
        typer.echo(f"note: {OPTIMISTIC}")
    start = time.perf_counter()
    tally = asyncio.run(send(target, records, batch=batch, concurrency=concurrency, api_key=key))
    elapsed = time.perf_counter() - start
    typer.echo(
        f"{tally.ok}/{tally.sent} rows answered 200 in {elapsed:.1f} s"
        + (f"; errors: {tally.errors}" if tally.errors else "")
    )
    if feedback:
        entries = feedback_labels(
            tally,
            labels,
            bundle.task,
            schema.classes,
            share=feedback,
            wrong=wrong_labels,
            seed=seed,
        )
        accepted = asyncio.run(send_feedback(target, entries, api_key=key))
        source = "reference rows: optimistic" if holdout is None else "rows not trained on"
        typer.echo(f"{accepted} labels accepted ({wrong_labels:.0%} made wrong; {source})")
    if tally.ok < tally.sent:
        raise typer.Exit(1)


if __name__ == "__main__":
    typer.run(main)
