"""The service's routing table: every path it answers, who answers it (its plane), and the
policies a request meets on the way there.

Everything else is read from ``ROUTES``: BentoML's endpoints and the mounted app are checked
against it (``service.app``), the Open Inference Protocol's router dispatches by it
(``service.v2.endpoint``), the key check, admission and the JSON body reader take their paths
from it, the request metrics give its paths a label of their own, and ``/docs.json`` documents
the routes marked ``documented``. Adding a route is a line here and its handler in its plane.
"""

from __future__ import annotations

import enum
import functools
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from functools import cached_property

from starlette.routing import compile_path

# The one model the Open Inference Protocol's paths name: this server serves one at a time.
MODEL_NAME = "vigil-model"
GET = ("GET",)
POST = ("POST",)
ANY: tuple[str, ...] = ()  # every method


class Plane(enum.Enum):
    """Who answers a route."""

    API = "a @bentoml.api endpoint of VigilService (service.app)"
    CARD = "the Starlette app mounted at / (service.routes)"
    PROTOCOL = "the Open Inference Protocol's router (service.v2.endpoint)"
    DOCS = "the published OpenAPI document (service.openapi.PublishedDocs)"
    BENTOML = "BentoML's own routes: probes, metrics, the index page, static files"


@dataclass(frozen=True)
class Route:
    """``path`` is exact, or a Starlette path pattern: ``{name}`` is one segment, ``{name:path}``
    the rest of the path. ``handler`` names what answers it within its plane."""

    path: str
    methods: tuple[str, ...]
    plane: Plane
    handler: str
    # Authorization: Bearer <VIGIL_API_KEY> required when a key is set (401 without it).
    keyed: bool = False
    # Counted against the worker's VIGIL_MAX_IN_FLIGHT; shed with 503 past it.
    admitted: bool = False
    # A JSON object body holding this one field, read by ``service.json_http.JsonApi``: bounded
    # (413), parsed, prechecked, errors in the contract's shape.
    body_field: str | None = None
    # A path of /docs.json.
    documented: bool = False

    @cached_property
    def _pattern(self) -> re.Pattern[str]:
        return compile_path(self.path)[0]

    @cached_property
    def prefix(self) -> str:
        """The literal start of the path, before any parameter."""
        return self.path.split("{", 1)[0]

    @property
    def exact(self) -> bool:
        return "{" not in self.path

    @property
    def served_path(self) -> str:
        """The path with the served model's name for ``{model}``: how ``/docs.json`` lists it."""
        return self.path.replace("{model}", MODEL_NAME)

    def match(self, path: str) -> dict[str, str] | None:
        """The path's parameters when it is this route's, else None."""
        if self.exact:
            return {} if path == self.path else None
        if not path.startswith(self.prefix):
            return None
        found = self._pattern.fullmatch(path)
        return found.groupdict() if found is not None else None

    def allows(self, method: str) -> bool:
        return not self.methods or method in self.methods


_MODEL = "/v2/models/{model}"
_VERSION = "/v2/models/{model}/versions/{version}"

# One line a route; the first that matches a path answers it. Policies as in ``Route``.
# fmt: off
ROUTES: tuple[Route, ...] = (
    Route("/predict", POST, Plane.API, "predict",
          keyed=True, admitted=True, body_field="instances", documented=True),
    Route("/feedback", POST, Plane.API, "feedback",
          keyed=True, admitted=True, body_field="labels", documented=True),
    # Open to anyone; the card's training details only with the key (service.routes).
    Route("/model", GET, Plane.CARD, "model", documented=True),
    Route("/v2", GET, Plane.PROTOCOL, "server", documented=True),
    Route("/v2/health/live", GET, Plane.PROTOCOL, "live", documented=True),
    Route("/v2/health/ready", GET, Plane.PROTOCOL, "ready", documented=True),
    Route(_MODEL, GET, Plane.PROTOCOL, "model", documented=True),
    Route(_VERSION, GET, Plane.PROTOCOL, "model", documented=True),
    Route(f"{_MODEL}/ready", GET, Plane.PROTOCOL, "model_ready", documented=True),
    Route(f"{_VERSION}/ready", GET, Plane.PROTOCOL, "model_ready", documented=True),
    # Keyed and admitted whatever model they name: the key is checked before the name.
    Route(f"{_MODEL}/infer", POST, Plane.PROTOCOL, "infer",
          keyed=True, admitted=True, documented=True),
    Route(f"{_VERSION}/infer", POST, Plane.PROTOCOL, "infer",
          keyed=True, admitted=True, documented=True),
    # Anything else under /v2/ is the protocol's 404.
    Route("/v2/{rest:path}", ANY, Plane.PROTOCOL, "not_found"),
    Route("/docs.json", GET, Plane.DOCS, "document"),
    Route("/livez", GET, Plane.BENTOML, "livez", documented=True),
    Route("/healthz", GET, Plane.BENTOML, "livez", documented=True),
    Route("/readyz", GET, Plane.BENTOML, "readyz", documented=True),
    Route("/metrics", GET, Plane.BENTOML, "metrics", documented=True),
    Route("/schema.json", GET, Plane.BENTOML, "schema"),
    Route("/", GET, Plane.BENTOML, "index"),
    # The index page's files (/assets/ instead under BentoML's "new_index" feature, not used).
    Route("/static_content/{file:path}", GET, Plane.BENTOML, "static"),
)
# fmt: on


class PathSet:
    """Request paths of some routes: ``path in paths`` is a set lookup for the exact ones and a
    prefix test (then a pattern) for the others, cheap on every request."""

    def __init__(self, routes: Iterable[Route]):
        routes = tuple(routes)
        self.exact = frozenset(route.path for route in routes if route.exact)
        self.patterns = tuple(route for route in routes if not route.exact)

    def __contains__(self, path: object) -> bool:
        if path in self.exact:
            return True
        return isinstance(path, str) and any(r.match(path) is not None for r in self.patterns)


def on(plane: Plane) -> Iterator[Route]:
    return (route for route in ROUTES if route.plane is plane)


def route_of(plane: Plane, handler: str) -> Route:
    """The first route ``handler`` of ``plane`` answers."""
    return next(route for route in on(plane) if route.handler == handler)


def find(plane: Plane, path: str) -> tuple[Route, dict[str, str]] | None:
    """The first of ``plane``'s routes that ``path`` is, with its parameters."""
    for route in on(plane):
        params = route.match(path)
        if params is not None:
            return route, params
    return None


@functools.cache
def keyed_paths() -> PathSet:
    return PathSet(route for route in ROUTES if route.keyed)


@functools.cache
def admitted_paths() -> PathSet:
    return PathSet(route for route in ROUTES if route.admitted)


@functools.cache
def json_paths() -> PathSet:
    return PathSet(route for route in ROUTES if route.body_field is not None)


def body_fields() -> dict[str, str]:
    """The one field of each JSON route's body, by path."""
    return {route.path: route.body_field for route in ROUTES if route.body_field is not None}


def endpoint_labels() -> tuple[frozenset[str], tuple[str, ...]]:
    """The paths with an ``endpoint`` label of their own in the request metrics (the served
    model's, not other names or versions: a bounded set), and the prefixes counted as
    ``<prefix>*``: those of the routes that take the rest of the path."""
    known = frozenset(r.served_path for r in ROUTES if "{" not in r.served_path)
    prefixes = tuple(r.prefix for r in ROUTES if r.path.endswith(":path}"))
    return known, prefixes
