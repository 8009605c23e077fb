"""Shared fixtures: fresh settings and state per test, and the rule for missing binaries."""

from __future__ import annotations

import os
import shutil
import socket

import pytest

from tests.support.integration_audit import Audit

AUDIT = Audit()


def pytest_configure(config):
    """Tests (and the servers they start, which inherit this environment) see only the settings
    they set themselves: no VIGIL_ variable from the shell, no developer's ``.env``."""
    for name in list(os.environ):
        if name.startswith("VIGIL_") and name != "VIGIL_TEST_POSTGRES_URL":
            del os.environ[name]
    os.environ["VIGIL_ENV_FILE"] = ""
    # MLflow tracking is on by default; only the tests of it (tests/training/mlflow) turn it
    # on: creating MLflow's database takes 10-40 s on loaded cores.
    os.environ["VIGIL_MLFLOW_TRACKING_URI"] = "off"
    os.environ.pop("MLFLOW_TRACKING_URI", None)
    # One OpenMP thread per process (HistGradientBoosting, and the servers tests start): the
    # suite runs a process per core, and more threads than cores spin rather than work (a fit
    # took ten times as long on a loaded 2-core machine).
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    if config.getoption("audit_integration"):
        AUDIT.install()


def pytest_addoption(parser):
    parser.addoption(
        "--audit-integration",
        action="store_true",
        help="fail a test that starts a process or opens a PostgreSQL connection without the "
        "integration (and postgres) marker",
    )


# The longest modules, longest first (each module's seconds in a whole run's --junitxml): the
# first a worker takes, so that none of them starts when the others are almost done.
LONGEST_FIRST = (
    "tests.e2e.test_tasks",
    "tests.service.test_fuzz",
    "tests.service.test_http",
    "tests.service.v2.test_v2_http",
    "tests.vigil.stack.test_traffic_live",
    "tests.training.test_tasks",
    "tests.monitoring.test_drift_robustness",
    "tests.vigil.cli.test_wheel",
    "tests.service.test_resilience",
    "tests.service.test_candidate_http",
    "tests.service.test_finite_outputs",
    "tests.training.mlflow.test_server",
    "tests.service.test_inference_http",
    "tests.e2e.test_first_minutes",
)


@pytest.hookimpl(tryfirst=True)  # before ``-m`` deselects
def pytest_collection_modifyitems(items):
    """Talking to PostgreSQL is integration: ``-m "not integration"`` leaves those tests out.

    The longest modules run first, then the other modules with integration tests, then the
    rest: xdist hands out modules in this order (``make test`` passes
    ``--no-loadscope-reorder``, which keeps it), so the many short unit tests fill the end of
    the run instead of a server-starting module keeping one worker busy after the others are
    done."""
    for item in items:
        if item.get_closest_marker("postgres") and not item.get_closest_marker("integration"):
            item.add_marker(pytest.mark.integration)
    slow = {item.module.__name__ for item in items if item.get_closest_marker("integration")}
    rank = {name: i for i, name in enumerate(LONGEST_FIRST)}

    def order(item) -> tuple[int, bool]:
        name = item.module.__name__
        return rank.get(name, len(rank)), name not in slow

    items.sort(key=order)  # stable: the order within a module is kept


@pytest.hookimpl(wrapper=True)
def pytest_runtest_protocol(item, nextitem):
    AUDIT.on = True
    try:
        return (yield)
    finally:
        AUDIT.on = False
        AUDIT.unmarked(set())  # what a failed phase left behind


def _fail_unmarked(item) -> None:
    """A test that started a process or opened a PostgreSQL connection carries the markers."""
    unmarked = AUDIT.unmarked({mark.name for mark in item.iter_markers()})
    if unmarked:
        pytest.fail(
            "reached outside the test process without its marker:\n  " + "\n  ".join(unmarked),
            pytrace=False,
        )


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item):
    result = yield  # setup's and the test's own
    _fail_unmarked(item)
    return result


@pytest.hookimpl(wrapper=True)
def pytest_runtest_teardown(item, nextitem):
    result = yield
    _fail_unmarked(item)
    return result


def missing(reason: str):
    """A dependency a test needs is not there: skip with the reason, but fail under ``CI=true``,
    where the project's own files must have installed it."""
    if os.environ.get("CI", "").lower() in {"1", "true", "yes"}:
        pytest.fail(reason)
    pytest.skip(reason)


def need_binary(*names: str) -> str:
    """Path of the first binary found; ``missing`` if none is."""
    for name in names:
        path = shutil.which(name)
        if path:
            return path
    missing(
        f"needs {' or '.join(names)} on PATH "
        "(apt-get install --no-install-recommends prometheus prometheus-alertmanager)"
    )


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def vigil_home(tmp_path, monkeypatch):
    """A fresh VIGIL_HOME per test; settings read from the environment see it."""
    home = tmp_path / "vigil-home"
    home.mkdir()
    monkeypatch.setenv("VIGIL_HOME", str(home))
    monkeypatch.delenv("VIGIL_DATABASE_URL", raising=False)
    monkeypatch.setenv("BENTOML_DO_NOT_TRACK", "true")
    return home


@pytest.fixture(scope="session")
def trained_homes(tmp_path_factory):
    """Homes trained once per run for all xdist workers (``tests.support.trained``)."""
    from tests.support.trained import TrainedHomes

    return TrainedHomes(tmp_path_factory)


def train_bundled(home, dataset: str | None = None, **args):
    """A promoted model of a dataset that ships with scikit-learn (default: breast cancer)."""
    from training.data import load
    from training.train import train
    from vigil.settings import get_settings

    data = load(None, None, dataset=dataset)
    outcome = train(get_settings(home=home), data, **args, promote=True)
    assert outcome.promoted, outcome


@pytest.fixture(scope="session")
def trained_home_template(trained_homes):
    """A VIGIL_HOME holding the default model, trained and promoted once per session."""
    return trained_homes.get("trained-home", train_bundled, seed=42)


@pytest.fixture(scope="session")
def wine_home_template(trained_homes):
    """A VIGIL_HOME whose production model is a 3-class classifier (``wine``, 20 trees)."""
    return trained_homes.get("wine-home", train_bundled, dataset="wine", n_estimators=20)


@pytest.fixture(scope="session")
def diabetes_home_template(trained_homes):
    """A VIGIL_HOME whose production model is a regressor (``diabetes``, 20 trees)."""
    return trained_homes.get("diabetes-home", train_bundled, dataset="diabetes", n_estimators=20)


@pytest.fixture
def trained_home(trained_home_template, tmp_path, monkeypatch):
    """A fresh copy of the trained home for this test, set as VIGIL_HOME."""
    home = tmp_path / "vigil-home"
    shutil.copytree(trained_home_template, home)
    monkeypatch.setenv("VIGIL_HOME", str(home))
    monkeypatch.delenv("VIGIL_DATABASE_URL", raising=False)
    monkeypatch.setenv("BENTOML_DO_NOT_TRACK", "true")
    return home


POSTGRES_URL = os.environ.get(
    "VIGIL_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test"
)


def postgres_log():
    """An inference log on PostgreSQL under a fresh table prefix, schema created; ``missing``
    when PostgreSQL cannot be reached. The caller drops the schema."""
    import uuid

    from vigil.log.inference_log import InferenceLog, InferenceLogError

    log = InferenceLog(POSTGRES_URL, f"t{uuid.uuid4().hex[:10]}_", timeout=3)
    try:
        log.create_schema()
    except InferenceLogError as exc:
        log.close()
        missing(f"needs PostgreSQL at {POSTGRES_URL}: {exc}")
    return log


@pytest.fixture
def postgres_url():
    """PostgreSQL for tests that need it; with a unique table prefix per test, dropped after."""
    log = postgres_log()
    yield POSTGRES_URL, log.table_prefix
    log.drop_schema()
    log.close()
