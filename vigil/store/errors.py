"""The errors of the database that the inference log and the model registry share.

They stand below both because the two share one schema version: the registry's schema error
is a ``LogSchemaError`` too, so whatever reports the log's (``/readyz``) reports it alike.
"""


class InferenceLogError(RuntimeError):
    """The store could not be reached or could not write."""


class LogSchemaError(InferenceLogError):
    """The database's schema is not this build's; the message names the command to run and
    holds no connection details (it may reach callers of ``/readyz``)."""
