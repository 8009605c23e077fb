"""Files Vigil generates from another source of truth: the Kubernetes generated files, the
Grafana dashboards' JSON and the configuration reference (``vigil render …``)."""
