"""Deprecated aliases: ``python -m stack.run`` is ``vigil run``, ``python -m stack.traffic`` is
``vigil traffic`` (kept for this release; the code lives in ``vigil.stack``)."""
