"""Schemathesis against a real 2-worker `bentoml serve`, from the OpenAPI document it publishes
(``/docs.json``, corrected by ``service.openapi``): every operation (the API, /model, the
probes, /metrics), its coverage and fuzzing phases, positive and negative cases, a fixed seed
and a bounded number of examples, for the default model (30 numeric features) and a mixed one
(categories, text labels).

All of Schemathesis' checks run (``--checks all``): status codes, content types, bodies and
headers as documented (the contract's error object, Retry-After on 503), schema-valid requests
accepted, schema-violating ones refused, no 5xx, the key enforced; plus ours
(``tests/service/fuzz_checks.py``): no stack trace in any body, every 400/413 names where.

The Open Inference Protocol's paths (``/v2/...``) are fuzzed in a run of their own, with every
check but ``positive_data_acceptance``: a JSON Schema cannot say that every input has the same
number of rows as its shape says, so a schema-valid request may rightly be refused.

Run through Schemathesis' CLI: its pytest plugin (``from_fixture``) does not work with pytest 9.
"""

from __future__ import annotations

import json
import subprocess
import sys

import httpx
import pytest

from tests.conftest import free_port
from tests.service.conftest import API_KEY, copy_home
from tests.support.processes import REPO
from tests.support.service import start_service

pytestmark = pytest.mark.integration

SEED = 8
MAX_EXAMPLES = 60  # per operation; about 10 s of fuzzing per model here
MAX_ROWS = 20  # keeps generated bodies small
CONFIG = f"""
seed = {SEED}
hooks = "tests.service.fuzz_checks"

[generation]
max-examples = {MAX_EXAMPLES}
database = "none"

# No crash cache under the repository: each run is its seed's cases only.
[cache]
enabled = false

# 413 (too many items, too large a body) is how the API refuses those.
[checks.negative_data_rejection]
expected-statuses = ["400", "401", "405", "413", "415", "422"]

[auth.openapi.bearer]
bearer = "{API_KEY}"
"""


@pytest.fixture(scope="module", params=["default", "mixed"])
def served(request, tmp_path_factory):
    template = request.getfixturevalue(
        "trained_home_template" if request.param == "default" else "mixed_home_template"
    )
    home = copy_home(template, tmp_path_factory.mktemp(f"fuzz-{request.param}") / "home")
    env = {"VIGIL_API_KEY": API_KEY, "VIGIL_WORKERS": "2", "VIGIL_MAX_BATCH_ROWS": str(MAX_ROWS)}
    with start_service(home, free_port(), env) as handle:
        yield handle


def test_fuzz_the_published_api(served, tmp_path):
    document = httpx.get(f"{served.url}/docs.json", timeout=10).json()
    # What is fuzzed is the corrected document: per-feature instances, the key, /model.
    body = document["paths"]["/predict"]["post"]["requestBody"]["content"]["application/json"]
    assert body["schema"]["properties"]["instances"]["items"]["additionalProperties"] is False
    assert document["components"]["securitySchemes"]["bearer"]["scheme"] == "bearer"
    assert "/model" in document["paths"]

    assert "/v2/models/vigil-model/infer" in document["paths"]

    result = _schemathesis(served, tmp_path, "--exclude-path-regex", "^/v2")
    operations, cases = result["operations"], result["test_cases"]
    assert operations["tested"] == 7  # of the document's 16
    assert cases["with_failures"] == cases["errored"] == 0
    # Both phases ran, on enough cases to mean something.
    assert result["phases"]["coverage"]["status"] == result["phases"]["fuzzing"]["status"]
    assert result["phases"]["fuzzing"]["status"] == "success"
    assert cases["generated"] >= 200


def test_fuzz_the_open_inference_protocol(served, tmp_path):
    result = _schemathesis(
        served,
        tmp_path,
        "--include-path-regex",
        "^/v2",
        "--exclude-checks",
        "positive_data_acceptance",
        # Its links (inferred from the paths) lead only to the same operations again.
        "--phases",
        "examples,coverage,fuzzing",
    )
    operations, cases = result["operations"], result["test_cases"]
    # /v2, two health probes, and metadata, ready and infer with and without a version.
    assert operations["tested"] == 9
    assert cases["with_failures"] == cases["errored"] == 0
    assert result["phases"]["fuzzing"]["status"] == "success"
    assert cases["generated"] >= 200


def _schemathesis(served, tmp_path, *selection: str) -> dict:
    """Run Schemathesis' CLI on the published document; its JSON report."""
    config = tmp_path / "schemathesis.toml"
    config.write_text(CONFIG)
    report = tmp_path / "report.json"
    argv = [
        sys.executable, "-m", "schemathesis.cli", "--config-file", str(config), "--no-color",
        "run", f"{served.url}/docs.json", "--checks", "all", "--workers", "1", *selection,
        "--report", "json", "--report-json-path", str(report),
    ]  # fmt: skip
    run = subprocess.run(argv, cwd=REPO, capture_output=True, text=True, timeout=240)
    assert run.returncode == 0, (
        f"{run.stdout}\n{run.stderr}\n--- service log:\n" + (served.log_text()[-3000:])
    )
    result = json.loads(report.read_text())
    operations, cases = result["operations"], result["test_cases"]
    print(
        f"\nfuzz: {operations['tested']}/{operations['total']} operations, "
        f"{cases['generated']} cases, {cases['unique_failures']} failures, "
        f"{result['running_time']:.1f} s"
    )
    return result
