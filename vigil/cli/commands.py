"""What ``vigil`` runs: each subcommand, the existing command behind it, its one line of help,
its panel in ``vigil --help`` and, for the commands a newcomer meets first, examples."""

from __future__ import annotations

from vigil.cli.lazy import LazyCommand, LazyGroup

RUN = "Run the loop"
MODELS = "Models"
OPERATE = "Operate"


def _examples(*lines: str) -> str:
    # Rich markup: one example a line ([bold] is a style, not text).
    return "[bold]Examples[/bold]\n\n" + "\n\n".join(lines)


def commands() -> list[LazyCommand | LazyGroup]:
    return [
        LazyCommand(
            "run",
            "vigil.stack.run:main",
            help="Run it all: service, monitor, Prometheus, Alertmanager.",
            panel=RUN,
        ),
        LazyCommand(
            "serve",
            "service.__main__:cli",
            subcommand="serve",
            help="Serve the production model (REST and Open Inference).",
            panel=RUN,
            epilog=_examples(
                "vigil serve                      # VIGIL_HOST:VIGIL_PORT, 127.0.0.1:3000",
                "vigil serve --host 0.0.0.0 --port 8080 --workers 4",
            ),
        ),
        LazyCommand(
            "monitor",
            "monitoring.drift:app",
            subcommand="run",
            help="Run the drift monitor: checks, /metrics, /reports/.",
            panel=RUN,
        ),
        LazyCommand(
            "check",
            "monitoring.drift:app",
            subcommand="check",
            help="Check the latest window for drift now.",
            panel=RUN,
            epilog=_examples(
                "vigil check                      # summary, then the HTML report's path",
                "vigil check --no-report          # summary only, seconds sooner",
                "vigil check --json               # one JSON line (the contract's)",
                "vigil check --fail-on-drift      # exit 1 on drift, for CI or cron",
            ),
        ),
        LazyCommand(
            "traffic",
            "vigil.stack.traffic:main",
            help="Send realistic traffic (and labels) to a service.",
            panel=RUN,
        ),
        LazyCommand(
            "train",
            "training.train:main",
            help="Train a model on a bundled dataset or your data.",
            panel=MODELS,
            epilog=_examples(
                "vigil train --promote            # the default dataset",
                "vigil train --data my.csv --target label --promote",
                "vigil train --dataset diabetes --estimator linear",
            ),
        ),
        LazyCommand(
            "register",
            "training.register:main",
            help="Register a model you trained elsewhere.",
            panel=MODELS,
            epilog=_examples(
                "vigil register --model model.skops --reference train.csv "
                "--holdout test.csv --target label --promote",
            ),
        ),
        LazyCommand(
            "retrain",
            "training.retrain:main",
            help="Retrain on recent labeled traffic; promote if better.",
            panel=MODELS,
        ),
        LazyCommand(
            "promote",
            "training.promote:main",
            help="Make a model production, or roll back.",
            panel=MODELS,
            epilog=_examples(
                "vigil promote vigil-model:abc123",
                "vigil promote vigil-model:abc123 --if-better   # only if its verdict says so",
                "vigil promote --rollback",
            ),
        ),
        LazyCommand(
            "models",
            "training.models:cli",
            help="List and show models; shadow or canary a candidate.",
            panel=MODELS,
        ),
        LazyCommand(
            "trigger",
            "training.trigger:main",
            help="Run the webhook that retrains on drift alerts.",
            panel=MODELS,
        ),
        LazyCommand(
            "db",
            "vigil.store.db:app",
            help="The inference log's schema: upgrade, check, grants.",
            panel=OPERATE,
        ),
        LazyCommand(
            "keys",
            "vigil.cli.keys:app",
            help="Model signing keys: make a key pair.",
            panel=OPERATE,
        ),
        LazyGroup(
            "render",
            [
                LazyCommand(
                    "configs",
                    "vigil.render.alerting:app",
                    help="Prometheus, rules and Alertmanager configs from the settings.",
                ),
                LazyCommand(
                    "k8s",
                    "vigil.render.k8s:main",
                    help="deploy/k8s's generated files (rules, alerts, dashboards).",
                ),
                LazyCommand(
                    "dashboards",
                    "vigil.render.dashboards:main",
                    help="The Grafana dashboards' JSON.",
                    needs="pip install 'vigil[dashboards]'",
                ),
                LazyCommand(
                    "config-docs",
                    "vigil.render.config_docs:main",
                    help="docs/configuration.md, from the settings object.",
                ),
            ],
            help="Render configs, dashboards, k8s files, settings docs.",
            panel=OPERATE,
        ),
    ]
