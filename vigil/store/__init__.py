"""The database under the log and the registry: its tables as queried (``tables``), the
schema's migrations (``migrations``, ``python -m vigil.db``: ``db``), the one engine per
database (``engine``), each connection's session settings (``session``), the errors the log
and the registry share (``errors``) and the service's least-privilege grants (``roles``)."""

from vigil.lazy import lazy_exports

_EXPORTS = {
    "SchemaError": ".migrations",
    "service_grants": ".roles",
}
__all__ = list(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
