"""``python -m vigil.db`` (its published name) runs ``vigil.store.db``."""

if __name__ == "__main__":
    from vigil.store.db import app

    app()
