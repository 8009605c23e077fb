"""The drift monitor: ``python -m monitoring.drift check|run``.

``detect`` (the statistics), ``check`` (one check, the contract's JSON), ``report`` (Evidently
HTML and its retention), ``quality`` (live quality from labels), ``metrics`` (Prometheus),
``server`` (HTTP), ``monitor`` (the loop), ``drift`` (the CLI). Prometheus and Alertmanager
configuration live beside them.
"""
