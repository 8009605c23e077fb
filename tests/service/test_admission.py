"""The per-worker bound on requests in flight: past it, 503 with Retry-After at once."""

from __future__ import annotations

import asyncio
import json

from service.admission import Admission


def test_past_max_in_flight_requests_are_shed_with_retry_after():
    release = asyncio.Event()
    shed: list[str] = []

    async def app(scope, receive, send):  # an endpoint that is busy until released
        await release.wait()
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"{}"})

    async def call(admission, path="/predict"):
        sent = []

        async def send(message):
            sent.append(message)

        scope = {"type": "http", "path": path, "method": "POST", "headers": []}
        await admission(scope, None, send)
        return sent

    async def main():
        admission = Admission(
            app, paths=frozenset({"/predict"}), max_in_flight=lambda: 2, on_shed=shed.append
        )
        busy = [asyncio.create_task(call(admission)) for _ in range(2)]
        await asyncio.sleep(0.01)
        refused = await call(admission)
        other_path = asyncio.create_task(call(admission, "/livez"))
        await asyncio.sleep(0.01)
        release.set()
        return refused, await asyncio.gather(*busy), await other_path, admission.in_flight

    refused, admitted, other, in_flight = asyncio.run(main())
    start = refused[0]
    assert start["status"] == 503
    headers = {k.decode().lower(): v.decode() for k, v in start["headers"]}
    assert int(headers["retry-after"]) >= 1
    body = json.loads(b"".join(m.get("body", b"") for m in refused[1:]))
    assert set(body) == {"error", "detail"} and "busy" in body["error"]
    assert shed == ["in_flight"]
    assert [a[0]["status"] for a in admitted] == [200, 200]
    assert other[0]["status"] == 200  # other paths are not bounded
    assert in_flight == 0
