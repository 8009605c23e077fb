"""A drift report holding hostile logged values, served by the monitor's real server and opened
in headless Chromium: the widgets draw, the attacker's script does not run.

Every payload, if it ran, would mark the document (an attribute on <html> or its title); the
DOM Chromium dumps after drawing shows no mark, and shows the payloads as text.
"""

from __future__ import annotations

import shutil
import subprocess

import pytest
from prometheus_client import CollectorRegistry

from monitoring.check import Checker
from monitoring.server import MonitorServer
from tests.conftest import free_port, missing
from tests.monitoring.generators import fill_log, mixed_frame
from vigil.log.inference_log import InferenceLog
from vigil.registry.store import Registry
from vigil.settings import get_settings

pytestmark = pytest.mark.integration

MARK = "data-pwned"
TITLE = "PWNED"
CATEGORIES = [
    f"</script><script>document.documentElement.setAttribute('{MARK}','script')</script>",
    f"</SCRIPT ><script>document.title='{TITLE}'</script>",
    f"<img src=x onerror=\"document.documentElement.setAttribute('{MARK}','img')\">",
    "<!--<script>",
    f"\u2028</script>\u2029<script>document.title='{TITLE}'</script>",
    "a&amp;b&lt;\\u003c\\",
]
# A feature name reaches the report too (from the training data's header).
FEATURE = f"<svg onload=\"document.documentElement.setAttribute('{MARK}','feature')\">"


def chromium() -> str:
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if path is None:
        missing("needs Debian's chromium (apt-get install --no-install-recommends chromium)")
    return path


@pytest.fixture(scope="module")
def hostile_report(tmp_path_factory):
    """A home whose model has a hostile feature name and whose log holds hostile categories,
    after one check wrote its report."""
    from training.data import load
    from training.train import train

    home = tmp_path_factory.mktemp("hostile-report")
    csv = home / "train.csv"
    mixed_frame(600, seed=7).rename(columns={"region": FEATURE}).to_csv(csv, index=False)
    settings = get_settings(home=home)
    assert train(settings, load(csv, "target"), seed=7, n_estimators=20, promote=True).promoted
    window = mixed_frame(600, seed=5).drop(columns="target").rename(columns={"region": FEATURE})
    for i, value in enumerate(CATEGORIES):
        window.loc[i * 40 : i * 40 + 39, "color"] = value
    log = InferenceLog.from_settings(settings)
    log.create_schema()
    try:
        fill_log(log, Registry(settings).load_production(), window)
        result = Checker(settings, log=log).check()
    finally:
        log.close()
    assert result.payload["report_path"], result.payload
    return settings


def dump_dom(browser: str, url: str, profile) -> str:
    argv = [
        browser,
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        f"--user-data-dir={profile}",
        "--virtual-time-budget=15000",
        "--timeout=30000",
        "--dump-dom",
        url,
    ]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


def test_hostile_values_render_as_text_and_run_nothing(hostile_report, tmp_path):
    browser = chromium()
    server = MonitorServer(
        ("127.0.0.1", free_port()), CollectorRegistry(), hostile_report.reports_dir
    )
    server.start()
    try:
        dom = dump_dom(browser, f"http://127.0.0.1:{server.port}/reports/latest", tmp_path)
    finally:
        server.stop()

    # The widgets drew (Plotly's charts, Evidently's column table naming the hostile feature
    # as text), and the hostile categories are in the page, as escaped data.
    assert dom.count('class="main-svg"') >= 2, dom[:2000]
    assert ">&lt;svg onload=" in dom and ">color<" in dom
    assert "Vigil drift check" in dom
    assert "\\u003c/script\\u003e\\u003cscript\\u003edocument.documentElement" in dom
    # No attacker script ran.
    assert f'{MARK}="' not in dom
    assert f"<title>{TITLE}</title>" not in dom
