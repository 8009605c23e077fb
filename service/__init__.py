"""The prediction service: BentoML app, request validation, micro-batching, metrics, auth."""
