"""The hand-over from the precheck (in the middleware) to the endpoint of the same request."""

from __future__ import annotations

import contextvars

from service.app import _prechecked, _take_prechecked


def _in_fresh_context(fn):
    return contextvars.copy_context().run(fn)


def test_the_endpoint_takes_what_the_same_model_prechecked():
    def run():
        old = object()
        _prechecked.set((old, "checked by old", ["sent"]))
        taken = _take_prechecked(old, lambda sent: ("checked again", sent), "stand-in")
        return taken, _prechecked.get()

    assert _in_fresh_context(run) == ("checked by old", None)


def test_a_rollout_between_precheck_and_endpoint_checks_the_sent_body_again():
    # The stand-in body BentoML parsed is empty: checking it would predict nothing.
    def run():
        old, new = object(), object()
        _prechecked.set((old, "checked by old", ["sent"]))
        taken = _take_prechecked(new, lambda sent: ("checked by new", sent), [])
        return taken, _prechecked.get()

    assert _in_fresh_context(run) == (("checked by new", ["sent"]), None)


def test_without_a_precheck_the_endpoint_checks_its_own_argument():
    def run():
        return _take_prechecked(object(), lambda sent: ("checked", sent), ["argument"])

    assert _in_fresh_context(run) == ("checked", ["argument"])
