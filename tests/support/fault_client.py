"""One registry call or a leader-election contender, run in its own process for fault tests
(``tests.support.blackhole``): it warms its connection up, prints ``ready``, waits for a line
on stdin, then makes the call once more and prints one JSON line: how long it took and how it
failed. ``leader`` instead prints a JSON line at every change of leadership.

python -m tests.support.fault_client check|reload|promote TAG|leader
"""

from __future__ import annotations

import json
import sys
import time


def main(op: str, tag: str | None = None) -> None:
    from vigil.registry.store import Registry
    from vigil.settings import get_settings

    settings = get_settings()
    if op == "leader":
        return _lead(settings)
    registry = Registry(settings)
    production = registry.production_tag()  # opens the pooled connection
    calls = {
        "check": registry.production_tag,
        "reload": lambda: registry.load(production),
        "promote": lambda: registry.promote(tag),
    }
    print("ready", flush=True)
    sys.stdin.readline()
    started = time.monotonic()
    error = None
    try:
        calls[op]()
    except Exception as exc:
        error = f"{type(exc).__name__}: {exc}"[:300]
    print(json.dumps({"op": op, "seconds": time.monotonic() - started, "error": error}))


def _lead(settings) -> None:
    from monitoring.leader import leadership

    def changed(leading: bool) -> None:
        print(json.dumps({"leading": leading, "at": time.time()}), flush=True)

    leadership(settings).start(changed)
    sys.stdin.readline()  # runs until told to stop


if __name__ == "__main__":
    main(*sys.argv[1:])
