"""The canary split: which model answers a request. A request whose id hashes below
``percent`` is answered by the candidate; the hash is SHA-256 of the request id, so the split
is the same on every replica and process. A request that names its version is not split."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from service.served_model import Model
from vigil.registry.candidates import CANARY

_SCALE = 10_000  # the split's resolution: 0.01 %


def canary_bucket(request_id: str) -> int:
    """The request's place in 0 .. 9999, the same in every process."""
    digest = hashlib.sha256(request_id.encode()).digest()
    return int.from_bytes(digest[:8], "big") % _SCALE


def in_canary(request_id: str, percent: float) -> bool:
    return canary_bucket(request_id) < round(percent * _SCALE / 100)


@dataclass(frozen=True)
class ActiveCandidate:
    """What this worker runs: the candidate's serving path and how it is used."""

    mode: str  # shadow | canary
    percent: float
    model: Model

    @property
    def tag(self) -> str:
        return self.model.bundle.tag

    def route(self, request_id: str, production: Model) -> tuple[Model, Model]:
        """(the model that answers, the model that scores it afterwards)."""
        if self.mode == CANARY and in_canary(request_id, self.percent):
            return self.model, production
        return production, self.model
