"""The wheel is the product: built with ``uv build``, installed into a fresh venv with the
locked dependencies, it runs from a directory that is not the repository with only VIGIL_HOME
(and, to share the machine, ports) set: ``vigil train --promote``, ``vigil serve``, ``vigil
check --json`` and ``vigil run``. Nothing is read from the checkout."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import sysconfig
import time
import zipfile
from pathlib import Path

import httpx
import pytest

from tests.conftest import free_port, missing
from tests.support.processes import http_ok, wait_until

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[3]
TOP_LEVEL = {"vigil", "service", "training", "monitoring"}
INSTANCE = json.loads((REPO / "examples" / "request.json").read_text())["instances"][0]


def _uv() -> str:
    local = Path(sys.executable).with_name("uv")
    found = str(local) if local.exists() else shutil.which("uv")
    if not found:
        missing("needs uv (installed in .venv by `make install`)")
    return found


def _up(url: str, proc: subprocess.Popen) -> bool:
    if proc.poll() is not None:
        pytest.fail(f"{proc.args} exited with {proc.returncode} before {url} answered")
    return http_ok(url)


class Steps:
    """Runs each command, remembering how long it took (printed at the end, with -s)."""

    def __init__(self):
        self.timings: list[tuple[str, float]] = []

    def run(self, name: str, argv: list[str], *, timeout: float, **kwargs):
        started = time.monotonic()
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, **kwargs)
        self.timings.append((name, time.monotonic() - started))
        assert proc.returncode == 0, f"{name}: exit {proc.returncode}\n{proc.stderr[-4000:]}"
        return proc

    def note(self, name: str, started: float) -> None:
        self.timings.append((name, time.monotonic() - started))


def _site_packages(venv: Path) -> Path:
    (found,) = venv.glob("lib/python*/site-packages")
    return found


def _seed_bytecode(source: Path, target: Path) -> int:
    """Link the project venv's compiled bytecode into ``target`` beside each identical source.

    What ``uv pip install --compile-bytecode`` would do, without compiling again: the first
    imports of a fresh venv otherwise compile pandas, scikit-learn, BentoML and Evidently, about
    half of this module's CPU time. A .pyc records its source's mtime and size, and uv links
    both venvs' files from one cache, so a copy is used only where the source is the same file;
    anywhere else Python compiles as usual. Nothing of vigil itself is seeded: it comes from
    the wheel."""
    count = 0
    for cache in source.rglob("__pycache__"):
        relative = cache.parent.relative_to(source)
        if set(relative.parts[:1]) & TOP_LEVEL or not (target / relative).is_dir():
            continue
        into = target / relative / "__pycache__"
        into.mkdir(exist_ok=True)
        for pyc in cache.glob("*.pyc"):
            if not (into / pyc.name).exists():
                try:
                    os.link(pyc, into / pyc.name)
                except OSError:  # another filesystem
                    shutil.copyfile(pyc, into / pyc.name)
                count += 1
    return count


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """A venv holding the locked dependencies and the freshly built wheel; (bin dir, steps)."""
    uv, tmp, steps = _uv(), tmp_path_factory.mktemp("wheel"), Steps()
    # The suite may run under `make test`, which byte-compiles at install: not needed here.
    env = {k: v for k, v in os.environ.items() if not k.startswith(("UV_", "VIRTUAL_ENV"))}
    dist = tmp / "dist"
    steps.run("uv build --wheel", [uv, "build", "--wheel", "--out-dir", str(dist)],
              cwd=REPO, env=env, timeout=300)  # fmt: skip
    (wheel,) = dist.glob("vigil-*.whl")
    requirements = tmp / "requirements.txt"
    steps.run(
        "uv export",
        [uv, "export", "--frozen", "--no-dev", "--no-hashes", "--no-emit-project",
         "-o", str(requirements)],
        cwd=REPO, env=env, timeout=120,
    )  # fmt: skip
    venv = tmp / "venv"
    steps.run("uv venv", [uv, "venv", "--python", sys.executable, str(venv)], env=env,
              cwd=tmp, timeout=120)  # fmt: skip
    steps.run(
        "uv pip install -r requirements.txt dist/vigil-*.whl",
        [uv, "pip", "install", "--python", str(venv / "bin" / "python"),
         "-r", str(requirements), str(wheel)],
        cwd=tmp, env=env, timeout=900,
    )  # fmt: skip
    started = time.monotonic()
    seeded = _seed_bytecode(Path(sysconfig.get_paths()["purelib"]), _site_packages(venv))
    steps.note(f"bytecode of {seeded} modules linked from the project's venv", started)
    yield wheel, venv / "bin", steps
    print("\n".join(f"{seconds:7.1f} s  {name}" for name, seconds in steps.timings))


def test_the_wheel_holds_only_vigils_packages_and_data(installed):
    wheel, _, _ = installed
    names = zipfile.ZipFile(wheel).namelist()
    top = {n.split("/")[0] for n in names if not n.split("/")[0].endswith(".dist-info")}
    assert top == TOP_LEVEL
    assert "monitoring/prometheus/rules/vigil.rules.yml.tmpl" in names
    assert not [n for n in names if "/tests/" in n or n.startswith(("tests/", "bench/"))]


# Four commands that each start from cold imports in a fresh venv: minutes on a busy machine.
@pytest.mark.timeout(1800)
def test_installed_vigil_trains_serves_checks_and_runs(installed, tmp_path):
    _, bin_dir, steps = installed
    work = tmp_path / "elsewhere"  # not the repository: nothing of it is on the path
    work.mkdir()
    home = tmp_path / "home"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("VIGIL_", "UV_"))}
    env.update(VIGIL_HOME=str(home), PATH=f"{bin_dir}:{env['PATH']}", BENTOML_DO_NOT_TRACK="1")
    env.pop("PYTHONPATH", None)
    vigil = str(bin_dir / "vigil")

    proc = steps.run("vigil train --promote", [vigil, "train", "--promote"], cwd=work, env=env,
                     timeout=600)  # fmt: skip
    assert json.loads(proc.stdout.splitlines()[-1])["promoted"] is True

    port = free_port()
    started = time.monotonic()
    server = subprocess.Popen(
        [vigil, "serve", "--port", str(port), "--workers", "1"],
        cwd=work, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        start_new_session=True,
    )  # fmt: skip
    try:
        url = f"http://127.0.0.1:{port}"
        wait_until(lambda: _up(f"{url}/readyz", server), 240, "vigil serve's /readyz")
        steps.note("vigil serve → /readyz 200", started)
        answer = httpx.post(f"{url}/predict", json={"instances": [INSTANCE]}, timeout=30)
        assert answer.status_code == 200, answer.text
        assert len(answer.json()["predictions"]) == 1
    finally:
        if server.poll() is None:
            os.killpg(server.pid, signal.SIGINT)
        assert server.wait(60) == 0, server.stderr.read()[-4000:]

    proc = steps.run("vigil check --json", [vigil, "check", "--json"], cwd=work, env=env,
                     timeout=600)  # fmt: skip
    payload = json.loads(proc.stdout)
    assert payload["model_version"].startswith("vigil-model:") and payload["window_rows"] == 1

    names = ("PORT", "MONITOR_PORT", "PROMETHEUS_PORT", "ALERTMANAGER_PORT", "WEBHOOK_PORT")
    ports = {f"VIGIL_{name}": str(free_port()) for name in names}
    webhook = f"http://127.0.0.1:{ports['VIGIL_WEBHOOK_PORT']}/alerts"
    run_env = {**env, **ports, "VIGIL_WORKERS": "1", "VIGIL_ALERT_WEBHOOK_URL": webhook}
    log = tmp_path / "run.log"
    started = time.monotonic()
    with log.open("wb") as out:
        runner = subprocess.Popen([vigil, "run"], cwd=work, env=run_env, stdout=out,
                                  stderr=subprocess.STDOUT, start_new_session=True)  # fmt: skip
    try:
        url = f"http://127.0.0.1:{ports['VIGIL_PORT']}/readyz"
        wait_until(lambda: _up(url, runner), 240, "vigil run's service")
        steps.note("vigil run → service /readyz 200", started)
        if shutil.which("prometheus"):
            rules = lambda: list((home / "config").rglob("vigil.rules.yml"))  # noqa: E731
            wait_until(rules, 60, "the rules rendered from the installed templates")
    finally:
        started = time.monotonic()
        if runner.poll() is None:
            os.killpg(runner.pid, signal.SIGINT)
        code = runner.wait(60)
        steps.note("vigil run: SIGINT → exit", started)
    assert code == 0, log.read_text()[-4000:]
    assert "Traceback" not in log.read_text()


def test_an_optional_dependency_missing_is_one_line_with_the_fix(installed, tmp_path):
    _, bin_dir, _ = installed
    proc = subprocess.run(
        [str(bin_dir / "vigil"), "render", "dashboards", "--out", str(tmp_path)],
        cwd=tmp_path, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 1
    assert proc.stderr.strip().splitlines() == [
        "error: `dashboards` needs the Python package grafana_foundation_sdk: "
        "pip install 'vigil[dashboards]'"
    ], proc.stderr
