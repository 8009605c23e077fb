"""``vigil keys``: the Ed25519 key pair that signs models (``vigil.registry.signing``)."""

from __future__ import annotations

import typer

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    help="Model signing keys: training signs with the private key, every reader verifies.",
)


@app.callback()
def main() -> None:
    """Model signing keys: training signs with the private key, every reader verifies."""


@app.command()
def keygen() -> None:
    """Print a new key pair (base64) as the two settings' lines."""
    from vigil.registry.signing import keygen as new_pair

    private, public = new_pair()
    typer.echo(f"VIGIL_MODEL_SIGNING_KEY={private}  # training only (a Secret of its own)")
    typer.echo(f"VIGIL_MODEL_VERIFY_KEY={public}  # service, monitor, retraining")
