"""``python -m vigil``: the ``vigil`` command, for when the venv's bin is not on PATH."""

from vigil.cli import main

if __name__ == "__main__":
    main()
