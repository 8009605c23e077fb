"""What starting a server imports before any model is loaded: the launcher
(``python -m service serve``, which reads the production pointer) and BentoML's arbiter (which
imports ``service.app`` for the service's definition) make no data frame and fit nothing, so
they load neither pandas (with pyarrow) nor scikit-learn. Each costs every start about a third
of a second of CPU per process, and replicas start often. A worker whose model needs pandas
loads it with the model, never in a request."""

from __future__ import annotations

import pytest

from tests.support.processes import python_output

pytestmark = pytest.mark.integration  # a new interpreter: a clean sys.modules

HEAVY = ("pandas", "pyarrow", "sklearn", "evidently")


@pytest.mark.parametrize(
    "imports",
    [
        "import service.app",
        "import service.__main__, service.auth, vigil.registry.store, vigil.settings",
    ],
    ids=["arbiter", "launcher"],
)
def test_starting_a_server_imports_no_frame_library(imports):
    code = f"import sys\n{imports}\nprint(sorted(m for m in {HEAVY!r} if m in sys.modules))"
    assert python_output(code) == "[]"


def test_a_model_served_by_scikit_learn_loads_pandas_with_itself_not_on_its_first_request():
    """Each of its calls makes a frame: the worker imports pandas while it loads the model
    (in a thread, or before it is ready), so the first request does not wait for it."""
    code = (
        "import sys, types\n"
        "from vigil.inference import SklearnInference\n"
        "before = 'pandas' in sys.modules\n"
        "bundle = types.SimpleNamespace(schema=None, contract={'task': 'regression'},\n"
        "                               pipeline=object())\n"
        "SklearnInference(bundle)\n"
        "print(before, 'pandas' in sys.modules)"
    )
    assert python_output(code).split() == ["False", "True"]
