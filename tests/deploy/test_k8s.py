"""deploy/k8s: every overlay renders and validates, and agrees with the code it deploys.

No cluster can run here, so the manifests are checked statically: Kubernetes' own schemas
(kubernetes-validate --strict), the prometheus-operator CRD schemas vendored under
deploy/schemas (check-jsonschema), promtool for the rules, then what no schema can see:
ports, probe paths, settings names, commands and mounts against the code.
"""

from __future__ import annotations

import ast
import json
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.conftest import missing, need_binary
from tests.support import k8s_yaml
from vigil.render import k8s as k8s_render
from vigil.settings import Settings

# Every overlay is rendered by kubectl (Kustomize), most checks then run a validator.
pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
K8S = REPO / "deploy" / "k8s"
OVERLAYS = sorted(p.name for p in (K8S / "overlays").iterdir() if p.is_dir())
SCHEMAS = REPO / "deploy" / "schemas" / "prometheus-operator"
CRD_KINDS = {
    "ServiceMonitor": "servicemonitor_v1.json",
    "PrometheusRule": "prometheusrule_v1.json",
    "AlertmanagerConfig": "alertmanagerconfig_v1alpha1.json",
}
PROMETHEUS_DIR = REPO / "monitoring" / "prometheus"
# The oldest Kubernetes these manifests target (podFailurePolicy, CronJob timeZone are GA) and
# the newest kubernetes-validate knows.
KUBERNETES_VERSIONS = ["1.30.0", "1.37.0"]
SECRET_KEYS = {
    "VIGIL_API_KEY",
    "VIGIL_DATABASE_URL",
    "VIGIL_SERVICE_DATABASE_URL",
    "VIGIL_MODEL_VERIFY_KEY",
}
SECRET_NAME = "vigil-secrets"
SIGNING_SECRET = ("vigil-signing", "VIGIL_MODEL_SIGNING_KEY")
# Secret key by environment variable, where they differ: the service's own database role.
SECRET_KEY_OF = {("vigil-service", "VIGIL_DATABASE_URL"): "VIGIL_SERVICE_DATABASE_URL"}


def _tool(name: str) -> str:
    local = Path(sys.executable).with_name(name)
    found = str(local) if local.exists() else shutil.which(name)
    if not found:
        missing(f"{name} is not installed (it is in the dev dependency group)")
    return found


def _kustomize(directory: Path) -> str:
    kubectl = need_binary("kubectl")
    result = subprocess.run(
        [kubectl, "kustomize", str(directory)], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


@pytest.fixture(scope="module")
def rendered() -> dict[str, str]:
    return {name: _kustomize(K8S / "overlays" / name) for name in OVERLAYS}


@pytest.fixture(scope="module")
def manifests(rendered) -> dict[str, list[dict]]:
    return {name: [d for d in k8s_yaml.load_all(text) if d] for name, text in rendered.items()}


def _one(docs: list[dict], kind: str, name: str) -> dict:
    (found,) = [d for d in docs if d["kind"] == kind and d["metadata"]["name"] == name]
    return found


def _templates(docs: list[dict]) -> dict[str, dict]:
    """Pod template of every workload, by workload name."""
    templates = {}
    for doc in docs:
        spec = doc.get("spec", {})
        if doc["kind"] == "CronJob":
            spec = spec["jobTemplate"]["spec"]
        if doc["kind"] in {"Deployment", "Job", "CronJob"}:
            templates[doc["metadata"]["name"]] = spec["template"]
    return templates


def _pod_specs(docs: list[dict]) -> dict[str, dict]:
    return {name: t["spec"] for name, t in _templates(docs).items()}


def _template_labels(docs: list[dict]) -> dict[str, dict]:
    return {name: t["metadata"]["labels"] for name, t in _templates(docs).items()}


def _config(docs: list[dict]) -> dict[str, str]:
    (config,) = [
        d
        for d in docs
        if d["kind"] == "ConfigMap" and d["metadata"]["name"].startswith("vigil-config")
    ]
    return config["data"]


def _settings(docs: list[dict]) -> Settings:
    values = {k.removeprefix("VIGIL_").lower(): v for k, v in _config(docs).items()}
    return Settings.model_construct(**Settings(_env_file=None, **values).model_dump())


def _dockerfile_cmd() -> list[str]:
    (line,) = [ln for ln in (REPO / "Dockerfile").read_text().splitlines() if ln.startswith("CMD ")]
    return json.loads(line[len("CMD ") :])


def test_overlays_exist():
    assert {"dev", "production"} <= set(OVERLAYS)


def test_generated_files_are_up_to_date():
    assert k8s_render.stale_files(REPO) == [], "run `vigil render k8s`"
    result = subprocess.run(
        [sys.executable, "-m", "vigil", "render", "k8s", "--check"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr


def test_stale_generated_file_is_reported(tmp_path, monkeypatch):
    copy = tmp_path / "prometheusrule.yaml"
    committed = (REPO / k8s_render.PROMETHEUS_RULE).read_text()
    copy.write_text(committed.replace("for: 1m", "for: 2m", 1))
    monkeypatch.setattr(k8s_render, "PROMETHEUS_RULE", copy)
    assert k8s_render.stale_files(REPO) == [copy]


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
def test_core_kinds_pass_kubernetes_validate_strict(rendered, tmp_path, version):
    for name, text in rendered.items():
        path = tmp_path / f"{name}.yaml"
        path.write_text(text)
        result = subprocess.run(
            [_tool("kubernetes-validate"), "--strict", "-k", version, "--quiet", str(path)],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert result.returncode == 0, f"{name}: {result.stdout}{result.stderr}"
        # The only kinds it cannot check are the two CRDs, validated below.
        unknown = set(re.findall(r"schema for kind (\w+)", result.stdout + result.stderr))
        assert unknown <= set(CRD_KINDS), (name, unknown)


def _closed(schema: object) -> object:
    """The schema with every object that lists its properties closed to others. Go's inline
    ``(?i)`` after ``^`` is no regex for check-jsonschema: those patterns match lower case."""
    if isinstance(schema, dict):
        out = {k: _closed(v) for k, v in schema.items()}
        if isinstance(out.get("pattern"), str):
            out["pattern"] = out["pattern"].replace("(?i)", "")
        if "properties" in out and "additionalProperties" not in out:
            out["additionalProperties"] = False
        return out
    if isinstance(schema, list):
        return [_closed(v) for v in schema]
    return schema


@pytest.mark.parametrize("kind", sorted(CRD_KINDS))
def test_crd_kinds_validate_against_vendored_operator_schemas(manifests, tmp_path, kind):
    schema_path = tmp_path / f"{kind}.schema.json"
    schema_path.write_text(json.dumps(_closed(json.loads((SCHEMAS / CRD_KINDS[kind]).read_text()))))
    for name, docs in manifests.items():
        (doc,) = [d for d in docs if d["kind"] == kind]
        doc_path = tmp_path / f"{name}-{kind}.json"
        doc_path.write_text(json.dumps(doc))
        result = subprocess.run(
            [_tool("check-jsonschema"), "--schemafile", str(schema_path), str(doc_path)],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert result.returncode == 0, f"{name}: {result.stdout}{result.stderr}"


def test_closed_schema_rejects_an_unknown_field(manifests, tmp_path):
    schema_path = tmp_path / "schema.json"
    schema = _closed(json.loads((SCHEMAS / CRD_KINDS["ServiceMonitor"]).read_text()))
    schema_path.write_text(json.dumps(schema))
    doc = json.loads(json.dumps(_one(manifests["production"], "ServiceMonitor", "vigil")))
    doc["spec"]["endpoints"][0]["paht"] = "/metrics"
    doc_path = tmp_path / "bad.json"
    doc_path.write_text(json.dumps(doc))
    result = subprocess.run(
        [_tool("check-jsonschema"), "--schemafile", str(schema_path), str(doc_path)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode != 0


@pytest.fixture(scope="module")
def rule_dir(manifests, tmp_path_factory) -> Path:
    """The production PrometheusRule's groups as a rules file, beside the promtool tests."""
    rule = _one(manifests["production"], "PrometheusRule", "vigil")
    root = tmp_path_factory.mktemp("k8s-rules")
    (root / "rules").mkdir()
    (root / "rules" / "vigil.rules.yml").write_text(yaml.safe_dump(rule["spec"]))
    shutil.copytree(PROMETHEUS_DIR / "tests", root / "tests")
    return root


def test_prometheus_rule_passes_promtool_check(rule_dir):
    promtool = need_binary("promtool")
    result = subprocess.run(
        [promtool, "check", "rules", "rules/vigil.rules.yml"],
        cwd=rule_dir,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_prometheus_rule_passes_the_rule_unit_tests(rule_dir):
    promtool = need_binary("promtool")
    tests = sorted(str(p.relative_to(rule_dir)) for p in (rule_dir / "tests").glob("*.test.yml"))
    assert tests
    result = subprocess.run(
        [promtool, "test", "rules", *tests],
        cwd=rule_dir,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_prometheus_rule_is_the_committed_rules_file(manifests):
    committed = yaml.safe_load((PROMETHEUS_DIR / "rules" / "vigil.rules.yml").read_text())
    for docs in manifests.values():
        assert _one(docs, "PrometheusRule", "vigil")["spec"] == committed


def test_stale_threshold_matches_the_deployed_drift_interval(manifests):
    for name, docs in manifests.items():
        interval = float(_config(docs)["VIGIL_DRIFT_INTERVAL_SECONDS"])
        groups = _one(docs, "PrometheusRule", "vigil")["spec"]["groups"]
        (stale,) = [r for g in groups for r in g["rules"] if r.get("alert") == "DriftCheckStale"]
        assert stale["expr"].strip().endswith(f") > {4 * interval:g}"), name


def _alertmanager_yml(spec: dict, url: str) -> dict:
    """An AlertmanagerConfig's spec back in alertmanager.yml's own terms (what the operator
    makes of it, less the namespace matcher it adds), the webhook URL filled in."""
    keys = {"groupBy": "group_by", "groupWait": "group_wait", "groupInterval": "group_interval"}
    keys |= {"repeatInterval": "repeat_interval", "receiver": "receiver", "continue": "continue"}

    def matchers(ms: list[dict]) -> list[str]:
        return [f'{m["name"]}{m["matchType"]}"{m["value"]}"' for m in ms]

    def route(r: dict) -> dict:
        out = {keys[k]: v for k, v in r.items() if k in keys}
        if "matchers" in r:
            out["matchers"] = matchers(r["matchers"])
        if "routes" in r:
            out["routes"] = [route(c) for c in r["routes"]]
        return out

    receivers = []
    for receiver in spec["receivers"]:
        hooks = receiver["webhookConfigs"]
        assert all(
            h["urlSecret"] == {"name": "vigil-alerting", "key": "webhook-url"} for h in hooks
        )
        receivers.append(
            {
                "name": receiver["name"],
                "webhook_configs": [
                    {"url": url, "send_resolved": h["sendResolved"]} for h in hooks
                ],
            }
        )
    inhibit = [
        {
            "source_matchers": matchers(r["sourceMatch"]),
            "target_matchers": matchers(r["targetMatch"]),
        }
        for r in spec["inhibitRules"]
    ]
    return {"route": route(spec["route"]), "receivers": receivers, "inhibit_rules": inhibit}


def test_alertmanager_config_routes_as_the_committed_alertmanager_yml(manifests, tmp_path):
    """Same routing, drift grouping and inhibition as make run and compose; the URL only by
    reference to a Secret; and the result is a config Alertmanager accepts."""
    committed = yaml.safe_load((REPO / "monitoring/alertmanager/alertmanager.yml").read_text())
    for name, docs in manifests.items():
        spec = _one(docs, "AlertmanagerConfig", "vigil")["spec"]
        url = committed["receivers"][0]["webhook_configs"][0]["url"]
        back = _alertmanager_yml(spec, url)
        assert back["route"] == committed["route"], name
        assert back["receivers"] == committed["receivers"], name
        assert back["inhibit_rules"] == committed["inhibit_rules"], name
        hooks = [h for r in spec["receivers"] for h in r["webhookConfigs"]]
        assert hooks and all(set(h) == {"urlSecret", "sendResolved"} for h in hooks), name
        assert "http" not in json.dumps(spec), name
        path = tmp_path / f"{name}-alertmanager.yml"
        path.write_text(yaml.safe_dump({"global": committed["global"], **back}))
        amtool = need_binary("amtool")
        result = subprocess.run(
            [amtool, "check-config", str(path)], capture_output=True, text=True, timeout=30
        )
        assert result.returncode == 0, result.stdout + result.stderr


def test_dashboards_are_configmaps_equal_to_the_source(manifests):
    sources = {p.name: p.read_text() for p in (REPO / "grafana" / "dashboards").glob("*.json")}
    assert sources
    for name, docs in manifests.items():
        found = {}
        for doc in docs:
            if doc["kind"] == "ConfigMap" and doc["metadata"].get("labels", {}).get(
                "grafana_dashboard"
            ):
                assert doc["metadata"]["labels"]["grafana_dashboard"] == "1"
                found |= doc["data"]
        assert found == sources, name


def test_monitoring_objects_carry_the_release_label(manifests):
    for docs in manifests.values():
        for kind in CRD_KINDS:
            (doc,) = [d for d in docs if d["kind"] == kind]
            assert doc["metadata"]["labels"]["release"], kind


def test_servicemonitor_scrapes_both_services_as_the_rules_jobs(manifests):
    for name, docs in manifests.items():
        monitor = _one(docs, "ServiceMonitor", "vigil")["spec"]
        (expr,) = monitor["selector"]["matchExpressions"]
        services = {d["metadata"]["name"]: d for d in docs if d["kind"] == "Service"}
        selected = {
            n
            for n, s in services.items()
            if s["metadata"]["labels"].get(expr["key"]) in expr["values"]
        }
        assert selected == {"vigil-service", "vigil-monitor"}, name
        # The job label is the Service's label value: the job names the alert rules match.
        jobs = {services[n]["metadata"]["labels"][monitor["jobLabel"]] for n in selected}
        assert jobs == {"vigil-service", "vigil-monitor"}
        rules = json.dumps(_one(docs, "PrometheusRule", "vigil")["spec"])
        assert all(f'job=\\"{job}\\"' in rules for job in jobs)
        (endpoint,) = monitor["endpoints"]
        assert endpoint["path"] == "/metrics"
        for n in selected:
            assert endpoint["port"] in {p["name"] for p in services[n]["spec"]["ports"]}


def _container(spec: dict) -> dict:
    (container,) = spec["containers"]
    return container


def _env_names(container: dict) -> set[str]:
    return {e["name"] for e in container.get("env", [])}


def test_every_vigil_variable_is_a_setting(manifests):
    fields = {f"VIGIL_{name.upper()}" for name in Settings.model_fields}
    for name, docs in manifests.items():
        used = set(_config(docs))
        for spec in _pod_specs(docs).values():
            used |= {n for n in _env_names(_container(spec)) if n.startswith("VIGIL_")}
        assert used - fields == set(), f"{name}: not settings: {sorted(used - fields)}"
        _settings(docs)  # and the values parse


def test_secrets_are_referenced_never_rendered(manifests, rendered):
    for name, docs in manifests.items():
        assert not [d for d in docs if d["kind"] == "Secret"], name
        assert not SECRET_KEYS & set(_config(docs)), name
        for workload, spec in _pod_specs(docs).items():
            for env in _container(spec).get("env", []):
                if env["name"] == SIGNING_SECRET[1]:
                    ref = env["valueFrom"]["secretKeyRef"]
                    assert (ref["name"], ref["key"]) == SIGNING_SECRET, workload
                elif env["name"] in SECRET_KEYS:
                    ref = env["valueFrom"]["secretKeyRef"]
                    key = SECRET_KEY_OF.get((workload, env["name"]), env["name"])
                    assert (ref["name"], ref["key"]) == (SECRET_NAME, key), workload
                    assert "value" not in env
            assert "VIGIL_DATABASE_URL" in _env_names(_container(spec)), workload
        service = _container(_pod_specs(docs)["vigil-service"])
        assert "VIGIL_API_KEY" in _env_names(service)
        assert "postgresql://" not in rendered[name]


def test_secret_example_holds_placeholders_and_is_not_a_resource():
    for example, name, keys in (
        (K8S / "secret.example.yaml", SECRET_NAME, SECRET_KEYS),
        (K8S / "secret-signing.example.yaml", SIGNING_SECRET[0], {SIGNING_SECRET[1]}),
    ):
        doc = yaml.safe_load(example.read_text())
        assert doc["kind"] == "Secret" and doc["metadata"]["name"] == name
        assert set(doc["stringData"]) == keys
        assert all("CHANGE-ME" in value for value in doc["stringData"].values())
    for kustomization in K8S.rglob("kustomization.yaml"):
        listed = yaml.safe_load(kustomization.read_text())
        files = listed.get("resources", []) + listed.get("components", [])
        assert not [f for f in files if "secret" in f], kustomization


def test_commands_match_the_dockerfile_compose_and_the_clis(manifests):
    compose = yaml.safe_load((REPO / "docker-compose.yml").read_text())["services"]
    for name, docs in manifests.items():
        specs = _pod_specs(docs)
        assert _container(specs["vigil-service"])["command"] == _dockerfile_cmd(), name
        assert _container(specs["vigil-service"])["command"] == compose["service"]["command"]
        assert _container(specs["vigil-monitor"])["command"] == compose["monitor"]["command"]
        assert _container(specs["vigil-train"])["command"] == compose["train"]["command"]
        retrain = _container(specs["vigil-retrain"])["command"]
        assert retrain == ["vigil", "retrain"], retrain


def test_ports_and_probes_agree_with_the_settings_and_routes(manifests):
    from monitoring import server

    service_app = (REPO / "service" / "routing.py").read_text()  # the routing table
    monitor_source = Path(server.__file__).read_text()
    for name, docs in manifests.items():
        settings = _settings(docs)
        specs = _pod_specs(docs)
        for workload, port, host in (
            ("vigil-service", settings.port, settings.host),
            ("vigil-monitor", settings.monitor_port, settings.monitor_host),
        ):
            container = _container(specs[workload])
            assert host == "0.0.0.0", (name, workload)
            (declared,) = container["ports"]
            assert declared["containerPort"] == port, (name, workload)
            service = _one(docs, "Service", workload)
            (sport,) = service["spec"]["ports"]
            assert sport["port"] == port and sport["targetPort"] == declared["name"]
            assert service["spec"]["selector"].items() <= _labels(docs, workload).items()
            for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
                assert container[probe]["httpGet"]["port"] == declared["name"], (workload, probe)
        service = _container(specs["vigil-service"])
        assert service["startupProbe"]["httpGet"]["path"] == "/readyz"
        assert service["readinessProbe"]["httpGet"]["path"] == "/readyz"
        assert service["livenessProbe"]["httpGet"]["path"] == "/livez"
        assert '"/readyz"' in service_app and '"/livez"' in service_app
        monitor = _container(specs["vigil-monitor"])
        for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
            path = monitor[probe]["httpGet"]["path"]
            assert f'path == "{path}"' in monitor_source, path
    expose = re.search(r"^EXPOSE (.+)$", (REPO / "Dockerfile").read_text(), re.MULTILINE)
    defaults = Settings.model_construct()
    assert {str(defaults.port), str(defaults.monitor_port)} <= set(expose.group(1).split())


def _labels(docs: list[dict], workload: str) -> dict:
    return _template_labels(docs)[workload]


def _traffic_timeout() -> float:
    """``traffic={"timeout": N}`` of the ``@bentoml.service`` decorator in service/app.py."""
    tree = ast.parse((REPO / "service" / "app.py").read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.keyword) and node.arg == "traffic":
            return ast.literal_eval(node.value)["timeout"]
    raise AssertionError("no traffic timeout in service/app.py")


def test_grace_period_covers_prestop_traffic_timeout_and_drain(manifests):
    for name, docs in manifests.items():
        spec = _pod_specs(docs)["vigil-service"]
        settings = _settings(docs)
        pre_stop = _container(spec)["lifecycle"]["preStop"]["exec"]["command"]
        assert pre_stop[0] == "sleep"
        budget = float(pre_stop[1]) + _traffic_timeout() + settings.log_timeout_seconds
        assert spec["terminationGracePeriodSeconds"] > budget, name


def test_pods_run_unprivileged_on_a_read_only_root(manifests):
    image_uid = re.search(r"useradd .*--uid (\d+)", (REPO / "Dockerfile").read_text()).group(1)
    for name, docs in manifests.items():
        for workload, spec in _pod_specs(docs).items():
            pod = spec["securityContext"]
            assert pod["runAsNonRoot"] and str(pod["runAsUser"]) == image_uid, workload
            assert spec["automountServiceAccountToken"] is False
            container = _container(spec)
            security = container["securityContext"]
            assert security["readOnlyRootFilesystem"] is True, workload
            assert security["allowPrivilegeEscalation"] is False
            assert security["capabilities"]["drop"] == ["ALL"]
            assert container["resources"]["requests"] and container["resources"]["limits"]
            mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
            empty = {v["name"] for v in spec["volumes"] if "emptyDir" in v}
            settings = _settings(docs)
            for path in (str(settings.home), "/tmp"):
                assert mounts.get(path) in empty, (name, workload, path)


def test_prometheus_multiprocess_dir_is_inside_an_emptydir_not_a_mount_point(manifests):
    from service.__main__ import server_home

    for name, docs in manifests.items():
        spec = _pod_specs(docs)["vigil-service"]
        settings = _settings(docs)
        # BentoML's PROMETHEUS_MULTIPROC_DIR is BENTOML_HOME/prometheus_multiproc_dir; the
        # service gives each server its own BENTOML_HOME. BentoML rmtree()s it at start.
        multiproc = server_home(settings) / "prometheus_multiproc_dir"
        mounts = {Path(m["mountPath"]): m["name"] for m in _container(spec)["volumeMounts"]}
        holders = [p for p in mounts if p in multiproc.parents]
        deepest = max(holders, key=lambda p: len(p.parts))
        assert mounts[deepest] == "metrics", (name, deepest)
        assert multiproc not in mounts
        (volume,) = [v for v in spec["volumes"] if v["name"] == "metrics"]
        assert volume["emptyDir"]["medium"] == "Memory"


def test_replicas_budgets_and_autoscaling(manifests):
    prod = manifests["production"]
    assert _one(prod, "Deployment", "vigil-service")["spec"]["replicas"] == 3
    assert _one(prod, "Deployment", "vigil-monitor")["spec"]["replicas"] == 2
    hpa = _one(prod, "HorizontalPodAutoscaler", "vigil-service")["spec"]
    assert hpa["minReplicas"] == 3 and hpa["maxReplicas"] > 3
    assert hpa["scaleTargetRef"]["name"] == "vigil-service"
    for docs in manifests.values():
        for workload in ("vigil-service", "vigil-monitor"):
            pdb = _one(docs, "PodDisruptionBudget", workload)["spec"]
            assert pdb["selector"]["matchLabels"].items() <= _labels(docs, workload).items()
    dev = manifests["dev"]
    assert _one(dev, "Deployment", "vigil-service")["spec"]["replicas"] == 1


def test_only_prometheus_reaches_the_monitor(manifests):
    for docs in manifests.values():
        policies = {d["metadata"]["name"]: d["spec"] for d in docs if d["kind"] == "NetworkPolicy"}
        deny = policies["vigil-default-deny-ingress"]
        assert deny["policyTypes"] == ["Ingress"] and "ingress" not in deny
        monitor = policies["vigil-monitor"]
        assert (
            monitor["podSelector"]["matchLabels"].items() <= _labels(docs, "vigil-monitor").items()
        )
        (rule,) = monitor["ingress"]
        (peer,) = rule["from"]
        # Both selectors in one peer: Prometheus pods in the monitoring namespace, not either.
        assert peer["podSelector"]["matchLabels"] == {"app.kubernetes.io/name": "prometheus"}
        assert "namespaceSelector" in peer
        assert [p["port"] for p in rule["ports"]] == ["http"]
        # Every pod is under the default deny.
        for workload, labels in _template_labels(docs).items():
            assert deny["podSelector"]["matchLabels"].items() <= labels.items(), workload


# The service's peers, as docs/deploy.md names them: (namespace or None for Vigil's, pod labels).
SERVICE_PEERS = [
    ("ingress-nginx", {"app.kubernetes.io/name": "ingress-nginx"}),
    ("monitoring", {"app.kubernetes.io/name": "prometheus"}),
    (None, {"vigil.io/client": "true"}),
]


def test_only_the_documented_peers_reach_the_service(manifests):
    docs_text = (REPO / "docs" / "deploy.md").read_text()
    for namespace, labels in SERVICE_PEERS:
        for key, value in labels.items():
            assert f"`{key}: {value}`" in docs_text or f'`{key}: "{value}"`' in docs_text
        assert namespace is None or f"`{namespace}` namespace" in docs_text
    for docs in manifests.values():
        policies = {d["metadata"]["name"]: d["spec"] for d in docs if d["kind"] == "NetworkPolicy"}
        service = policies["vigil-service"]
        labels = _labels(docs, "vigil-service")
        assert service["podSelector"]["matchLabels"].items() <= labels.items()
        (rule,) = service["ingress"]
        assert [p["port"] for p in rule["ports"]] == ["http"]
        peers = []
        for peer in rule["from"]:
            assert set(peer) <= {"namespaceSelector", "podSelector"}, peer  # no ipBlock
            assert peer["podSelector"]["matchLabels"], peer  # never every pod
            ns = peer.get("namespaceSelector")
            name = ns["matchLabels"]["kubernetes.io/metadata.name"] if ns is not None else None
            peers.append((name, peer["podSelector"]["matchLabels"]))
        assert peers == SERVICE_PEERS


def test_models_are_signed_by_training_only_and_served_through_onnx(manifests):
    """Origin: only the training jobs hold the signing key; every workload verifies and
    refuses unsigned models; the service serves ONNX only, as a role without DDL."""
    for name, docs in manifests.items():
        settings = _settings(docs)
        assert settings.require_signed_models is True and settings.inference == "onnx", name
        specs = _pod_specs(docs)
        signers = {
            w for w, spec in specs.items() if SIGNING_SECRET[1] in _env_names(_container(spec))
        }
        assert signers == {"vigil-train", "vigil-retrain"}, name
        for workload, spec in specs.items():
            assert "VIGIL_MODEL_VERIFY_KEY" in _env_names(_container(spec)), workload
        service = {e["name"]: e for e in _container(specs["vigil-service"])["env"]}
        assert service["VIGIL_MANAGE_SCHEMA"]["value"] == "false"
        ref = service["VIGIL_DATABASE_URL"]["valueFrom"]["secretKeyRef"]
        assert ref["key"] == "VIGIL_SERVICE_DATABASE_URL"


def test_production_image_is_the_released_version(manifests):
    version = re.search(r'^version = "([^"]+)"', (REPO / "pyproject.toml").read_text(), re.M)
    images = {_container(spec)["image"] for spec in _pod_specs(manifests["production"]).values()}
    (image,) = images
    assert image.endswith(f":{version.group(1)}"), image
    assert shlex.split(image) == [image]
