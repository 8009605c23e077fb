"""``python -m vigil.signing``, deprecated for ``vigil keys`` (kept for this release)."""

if __name__ == "__main__":
    from vigil.cli.keys import app

    app()
