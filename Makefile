# Vigil: `make run` starts everything on embedded defaults; `make test` runs the whole suite.
# Every target creates .venv on first use and runs the `vigil` command installed there
# (.venv/bin/vigil). Settings come from VIGIL_* variables or .env.

SHELL := /bin/bash
.DEFAULT_GOAL := help
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
VIGIL := $(VENV)/bin/vigil
UV := $(VENV)/bin/uv
UV_VERSION := 0.13.9
ARGS ?=
export BENTOML_DO_NOT_TRACK := true
export UV_PROJECT_ENVIRONMENT := $(VENV)
# Byte-compile at install (about 40 s once, in the first `make install`/`make run`): otherwise
# every first import in a fresh clone's test run (each server subprocess included) compiles the
# packages again.
export UV_COMPILE_BYTECODE := 1

$(VENV)/.synced: pyproject.toml uv.lock
	@test -x $(UV) || { $(PYTHON) -m venv $(VENV) && $(VENV)/bin/pip install --quiet "uv==$(UV_VERSION)"; }
	$(UV) sync --frozen
	@touch $@

.PHONY: help
help: ## List the targets
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z0-9_-]+:.*## / {printf "  \033[36m%-10s\033[0m %s\n", $$1, $$2}' $(MAKEFILE_LIST)

.PHONY: install
install: $(VENV)/.synced ## Create .venv and install the locked dependencies

.PHONY: run
run: $(VENV)/.synced ## Train if needed, then run the service, monitor, Prometheus and Alertmanager
	$(VIGIL) run $(ARGS)

.PHONY: migrate
migrate: $(VENV)/.synced ## Migrate the inference log's schema to this build's (vigil db upgrade)
	$(VIGIL) db upgrade $(ARGS)

.PHONY: train
train: $(VENV)/.synced ## Train the default model and promote it if it passes the gates
	$(VIGIL) train --promote $(ARGS)

.PHONY: retrain
retrain: $(VENV)/.synced ## Retrain on the reference plus recent labeled traffic; promote if better
	$(VIGIL) retrain $(ARGS)

.PHONY: experiments
experiments: $(VENV)/.synced ## Open the MLflow UI on the runs and models training recorded (PORT=5000)
	$(PY) -m training.mlflow.ui --port $(or $(PORT),5000) $(ARGS)

.PHONY: serve
serve: $(VENV)/.synced ## Run the prediction service alone (VIGIL_HOST:VIGIL_PORT)
	$(VIGIL) serve $(ARGS)

.PHONY: monitor
monitor: $(VENV)/.synced ## Run the drift monitor alone (VIGIL_MONITOR_PORT)
	$(VIGIL) monitor $(ARGS)

.PHONY: check
check: $(VENV)/.synced ## One drift check now: the verdict, then the report (ARGS=--json for the JSON line)
	$(VIGIL) check $(ARGS)

.PHONY: traffic
traffic: $(VENV)/.synced ## Send realistic traffic to a running service (DRIFT=one|most for drifted)
	$(VIGIL) traffic $(if $(DRIFT),--drift $(DRIFT),) $(ARGS)

# Four processes on two cores: most of an integration test's time is waiting on a server it
# started (readiness, a scrape, a follower's poll), and another worker's test fills that wait.
# A module's tests stay together (--dist loadscope), so a module's shared server starts once;
# modules go out in tests/conftest.py's order, the longest first (--no-loadscope-reorder: xdist
# would otherwise hand out the modules with the most tests first). --audit-integration fails a
# test that starts a process or connects to PostgreSQL without its marker, so test-fast has none.
PYTEST_WORKERS ?= 4
PYTEST = $(PY) -m pytest -n $(PYTEST_WORKERS) --dist loadscope --no-loadscope-reorder --audit-integration

.PHONY: test
test: $(VENV)/.synced ## Run the whole test suite (PYTEST_WORKERS processes, default 4)
	$(PYTEST) $(ARGS)

# The edit loop: no test that starts a process or talks to PostgreSQL (--audit-integration
# fails one that does without its marker), so no server, no subprocess, no database.
.PHONY: test-fast
test-fast: $(VENV)/.synced ## The suite without integration tests (no servers, subprocesses or PostgreSQL)
	$(PYTEST) -m "not integration" $(ARGS)

.PHONY: bench
bench: $(VENV)/.synced ## Benchmark the service and the drift check; writes bench-results/
	$(PY) -m bench $(ARGS)

.PHONY: lint
lint: $(VENV)/.synced ## Ruff lint and format check, actionlint on the workflows, hadolint on the Dockerfile
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/actionlint .github/workflows/*.yml
	$(VENV)/bin/hadolint Dockerfile

.PHONY: k8s
k8s: $(VENV)/.synced ## Render and validate the Kubernetes overlays (deploy/k8s), no cluster needed
	$(VIGIL) render k8s --check
	@for overlay in deploy/k8s/overlays/*/; do \
	  echo "kubectl kustomize $$overlay"; kubectl kustomize "$$overlay" >/dev/null || exit 1; \
	done
	$(PY) -m pytest tests/deploy -q $(ARGS)

.PHONY: configs
configs: $(VENV)/.synced ## Render Prometheus and Alertmanager configs from the templates
	$(VIGIL) render configs $(ARGS)

.PHONY: dashboards
dashboards: $(VENV)/.synced ## Regenerate the Grafana dashboards' JSON
	$(VIGIL) render dashboards

.PHONY: docs
docs: $(VENV)/.synced ## Regenerate docs/configuration.md from the settings object
	$(VIGIL) render config-docs

.PHONY: wheel
wheel: $(VENV)/.synced ## Build the wheel into dist/ (installs with pip; `vigil` is its command)
	$(UV) build --wheel

.PHONY: clean
clean: ## Remove .venv and local state (.vigil)
	rm -rf $(VENV) .vigil .pytest_cache .ruff_cache dist
