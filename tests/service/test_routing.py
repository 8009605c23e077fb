"""The routing table is where the service's routes and their policies come from: the endpoints,
the mounted app, the protocol's router, the middleware's paths, the metrics labels and the
published document all agree with it."""

from __future__ import annotations

import re

import pytest

from service.routing import (
    MODEL_NAME,
    ROUTES,
    Plane,
    Route,
    admitted_paths,
    endpoint_labels,
    find,
    json_paths,
    keyed_paths,
    on,
)


def example(route: Route, version: str = "v1") -> str:
    """A request path of ``route``: its parameters filled in."""

    def value(found: re.Match) -> str:
        name, converter = found[1], found[2]
        if converter == ":path":
            return "index.css" if route.plane is Plane.BENTOML else "no/such/route"
        return MODEL_NAME if name == "model" else version

    return re.sub(r"\{(\w+)(:\w+)?\}", value, route.path)


@pytest.fixture(scope="module")
def service():
    from service.app import VigilService

    return VigilService


def middleware_options(service, name: str) -> dict:
    (options,) = [opts for cls, opts in service.middlewares if cls.__name__ == name]
    return options


def test_every_route_is_found_as_itself_and_its_policies_hold_for_its_paths():
    assert len({(route.path, route.methods) for route in ROUTES}) == len(ROUTES)
    for route in ROUTES:
        path = example(route)
        assert find(route.plane, path) == (route, route.match(path)), route
        assert (path in keyed_paths()) is route.keyed, route
        assert (path in admitted_paths()) is route.admitted, route
        assert (path in json_paths()) is (route.body_field is not None), route


def test_unknown_paths_are_in_no_policy_set():
    for path in ("/predict/x", "/predictx", "/v2/models/x/infer/x", "/v2/models//infer"):
        assert path not in keyed_paths() and path not in admitted_paths(), path
    assert "/model" not in json_paths() and "/v2/models/x/infer" in keyed_paths()


def test_the_middleware_takes_its_paths_from_the_table(service):
    assert middleware_options(service, "BearerAuth")["paths"] is keyed_paths()
    assert middleware_options(service, "Admission")["paths"] is admitted_paths()
    assert middleware_options(service, "JsonApi")["paths"] is json_paths()
    docs = middleware_options(service, "PublishedDocs")["path"]
    assert [route.path for route in on(Plane.DOCS)] == [docs]


def test_bentoml_endpoints_and_the_mounted_app_are_the_tables(service):
    from service.routes import make_app
    from service.v2.endpoint import OpenInference

    endpoints = {
        (name, api.route, *api.input_spec.model_fields) for name, api in service.apis.items()
    }
    declared = {(route.handler, route.path, route.body_field) for route in on(Plane.API)}
    assert endpoints == declared
    mounted = {(r.path, frozenset(r.methods)) for r in make_app(lambda: None).routes}
    card = {(route.path, frozenset({*route.methods, "HEAD"})) for route in on(Plane.CARD)}
    assert mounted == card
    assert {route.handler for route in on(Plane.PROTOCOL)} == set(OpenInference.handlers)


def test_the_published_document_lists_the_documented_routes(service):
    from service.openapi import published
    from service.v2.openapi import add_protocol_paths

    for keyed in (False, True):
        document = published(
            service.openapi_spec.asdict(),
            model_version=None,
            instance=None,
            classes=None,
            max_rows=10,
            keyed=keyed,
        )
        document = add_protocol_paths(document, features=None, max_rows=10, keyed=keyed)
        documented = {route.served_path for route in ROUTES if route.documented}
        assert set(document["paths"]) == documented
        for route in ROUTES:
            if route.documented:
                (operation,) = document["paths"][route.served_path].values()
                assert ("security" in operation) is (keyed and route.keyed), route


def test_metrics_label_the_served_models_paths_and_group_the_rest():
    known, prefixes = endpoint_labels()
    assert {"/predict", "/model", f"/v2/models/{MODEL_NAME}/infer", "/metrics"} <= known
    assert not any("{" in path for path in known)
    assert f"/v2/models/{MODEL_NAME}/versions/v1" not in known
    assert prefixes == ("/v2/", "/static_content/")
