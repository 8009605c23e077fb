"""Deprecated alias of ``vigil render dashboards`` (kept for this release)."""

from vigil.render.dashboards import app

if __name__ == "__main__":
    app()
