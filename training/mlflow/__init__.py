"""MLflow in and out: tracking runs, registering from MLflow, aliases and the follower.

Nothing here imports ``mlflow`` at import time: it costs a second and ~50 MB, and the service
and the monitor never need it.
"""
