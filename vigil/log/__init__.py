"""The inference log: every request's inputs and predictions, durably written before the
answer (``inference_log``), as JSON columns (``format``), keyed by ids derived from the
request (``prediction_ids``), partitioned by day on PostgreSQL (``partitions``); the monitor's
window (``window``) and cheap progress count (``progress``); a candidate's shadow predictions
(``shadow``)."""

from vigil.lazy import lazy_exports

_EXPORTS = {
    "InferenceLog": ".inference_log",
    "InferenceLogError": ".inference_log",
    "LogRecord": ".inference_log",
    "LogSchemaError": ".inference_log",
    "LogProgress": ".progress",
    "NewRows": ".progress",
    "Position": ".progress",
    "ShadowLog": ".shadow",
    "ShadowRecord": ".shadow",
    "MAX_REQUEST_ROWS": ".prediction_ids",
    "is_request_id": ".prediction_ids",
    "new_request_id": ".prediction_ids",
    "new_request_ids": ".prediction_ids",
    "prediction_id": ".prediction_ids",
    "prediction_ids": ".prediction_ids",
    "split_prediction_id": ".prediction_ids",
}
__all__ = list(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
