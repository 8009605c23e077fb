"""Reading ``kubectl kustomize`` output with PyYAML.

Kubernetes reads YAML 1.2, where a bare ``=`` (an AlertmanagerConfig's ``matchType: =``, as
kustomize writes it) is a string; PyYAML reads YAML 1.1, where it is the obscure ``value`` tag
and an error. This loader reads it as the string Kubernetes sees.
"""

from __future__ import annotations

from collections.abc import Iterator

import yaml


class KubernetesLoader(yaml.SafeLoader):
    pass


KubernetesLoader.add_constructor(
    "tag:yaml.org,2002:value", lambda loader, node: loader.construct_scalar(node)
)


def load_all(text: str) -> Iterator[object]:
    return yaml.load_all(text, Loader=KubernetesLoader)  # noqa: S506 - a SafeLoader subclass
