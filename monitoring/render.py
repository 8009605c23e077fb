"""Deprecated alias: ``python -m monitoring.render`` is ``vigil render configs``
(``vigil.render.alerting``)."""

if __name__ == "__main__":
    from vigil.render.alerting import app

    app()
