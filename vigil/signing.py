"""``python -m vigil.signing`` (its published name) runs ``vigil.registry.signing``."""

if __name__ == "__main__":
    from vigil.registry.signing import main

    main()
