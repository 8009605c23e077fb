"""Hostile load against the 2-worker service: ``python -m bench --only hostile``.

Not a test: it measures and prints. On the default model (trained into a temporary VIGIL_HOME),
two workers, the shipped limits and an API key, in one invocation:

(a) memory bombs: 4 concurrent 30 MB bodies of ``{"instances": [{"a":1}, ...]}`` (3.75 million
    items each), once with a Content-Length and once chunked; then 16 concurrent bodies of the
    most rows allowed (VIGIL_MAX_BATCH_ROWS real instances at full precision). The workers'
    RSS at idle and at its peak during each, and each answer's status and time;
(b) 1-row /predict latency of 8 normal clients, alone and then while 16 connections flood the
    service with oversized, malformed, keyless and non-finite requests;
(c) overload: 256 concurrent 1-row clients for 20 s (several times what two cores can serve),
    first clients that retry at once, then clients that wait as a 503's Retry-After says:
    statuses, admitted throughput and p99, 503s with and without Retry-After,
    vigil_requests_shed_total by reason, RSS growth; then the normal 32-client throughput,
    compared with the same measured before (a).

The load comes from a small asyncio HTTP/1.1 client (pre-built requests, keep-alive, one
coroutine per client): cheap enough not to starve the service it shares the cores with, and it
times every answer by its status. Results go to ``<out>/hostile.json``.
"""

from __future__ import annotations

import asyncio
import json
import random
import shutil
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench import summary_lines
from bench.service_bench import _train

API_KEY = "bench-key-0123456789"
BOMB_BYTES = 30 * 1024 * 1024
BOMB_ITEM = b'{"a":1},'
NORMAL_CLIENTS = 8
FLOOD_CLIENTS = 16
OVERLOAD_CLIENTS = 256
OVERLOAD_SECONDS = 20.0
BASELINE_CLIENTS = 32
MEASURE_SECONDS = 8.0
TARGETS = {
    "bomb_rss_growth_mb": 200,  # per worker, above idle
    "overload_admitted_p99_ms": 250,
    "overload_rss_growth_mb": 200,
    "after_over_before_c32": 0.90,
}


# --- a minimal HTTP/1.1 client ------------------------------------------------------------


def request_bytes(path: str, body: bytes, *, key: str | None = API_KEY, **extra: str) -> bytes:
    headers = {"Host": "bench", "Content-Type": "application/json"}
    if key is not None:
        headers["Authorization"] = f"Bearer {key}"
    if "Transfer-Encoding" not in extra:
        headers["Content-Length"] = str(len(body))
    headers.update(extra)
    head = f"POST {path} HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers.items())
    return (head + "\r\n").encode() + body


async def read_response(reader: asyncio.StreamReader) -> tuple[int, dict[str, str], bytes]:
    line = await reader.readline()
    if not line:
        raise ConnectionResetError("closed before an answer")
    status = int(line.split()[1])
    headers: dict[str, str] = {}
    while (raw := await reader.readline()) not in (b"\r\n", b""):
        name, _, value = raw.decode("latin-1").partition(":")
        headers[name.strip().lower()] = value.strip()
    body = await reader.readexactly(int(headers.get("content-length", "0")))
    return status, headers, body


@dataclass
class Tally:
    """Answers of one load: (status, seconds, has Retry-After) each, plus transport errors."""

    answers: list[tuple[int, float, bool]] = field(default_factory=list)
    errors: int = 0
    seconds: float = 0.0

    def statuses(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for status, _, _ in self.answers:
            out[str(status)] = out.get(str(status), 0) + 1
        return dict(sorted(out.items()))

    def latency_ms(self, status: int | None = 200) -> dict[str, float | None]:
        times = sorted(s for code, s, _ in self.answers if status is None or code == status)
        if not times:
            return {"p50_ms": None, "p99_ms": None}

        def pct(q: float) -> float:
            return round(1000 * times[min(len(times) - 1, int(q * len(times)))], 2)

        return {"p50_ms": pct(0.50), "p99_ms": pct(0.99)}

    def per_second(self, status: int = 200) -> float:
        n = sum(1 for code, _, _ in self.answers if code == status)
        return round(n / self.seconds, 1) if self.seconds else 0.0


async def _client(
    host: str,
    port: int,
    pick,
    deadline: float,
    tally: Tally,
    stop: asyncio.Event | None = None,
    reuse: bool = True,
    polite: bool = False,
) -> None:
    """Send ``pick()`` until ``deadline`` (or ``stop``), on one kept-alive connection unless
    not ``reuse`` (a request whose body the server did not read leaves the connection unusable).
    A ``polite`` client waits as long as a 503's Retry-After says before its next request."""
    reader = writer = None
    while time.perf_counter() < deadline and not (stop and stop.is_set()):
        try:
            if writer is None:
                reader, writer = await asyncio.open_connection(host, port)
            raw = pick()
            started = time.perf_counter()
            writer.write(raw)
            await writer.drain()
            status, headers, _ = await read_response(reader)
            tally.answers.append((status, time.perf_counter() - started, "retry-after" in headers))
            if not reuse or headers.get("connection", "").lower() == "close":
                writer.close()
                reader = writer = None
            if polite and status == 503 and "retry-after" in headers:
                await asyncio.sleep(
                    min(float(headers["retry-after"]), deadline - time.perf_counter())
                )
        except (OSError, asyncio.IncompleteReadError, ValueError, IndexError):
            tally.errors += 1
            if writer is not None:
                writer.close()
            reader = writer = None
            await asyncio.sleep(0.01)
    if writer is not None:
        writer.close()


async def _load(url: str, pick, clients: int, seconds: float, polite: bool = False) -> Tally:
    host, port = _host_port(url)
    tally = Tally()
    started = time.perf_counter()
    deadline = started + seconds
    await asyncio.gather(
        *(_client(host, port, pick, deadline, tally, polite=polite) for _ in range(clients))
    )
    tally.seconds = time.perf_counter() - started
    return tally


def _host_port(url: str) -> tuple[str, int]:
    host, port = url.removeprefix("http://").split(":")
    return host, int(port)


async def _bomb(url: str, body_chunks, head: bytes) -> dict[str, Any]:
    """Send ``head`` then ``body_chunks`` until the server answers; the answer and its time."""
    host, port = _host_port(url)
    reader, writer = await asyncio.open_connection(host, port)
    started = time.perf_counter()
    sent = 0

    async def send() -> None:
        nonlocal sent
        writer.write(head)
        for chunk in body_chunks:
            writer.write(chunk)
            sent += len(chunk)
            await writer.drain()

    sending = asyncio.ensure_future(send())
    try:
        status, _, body = await asyncio.wait_for(read_response(reader), 120)
        outcome = {"status": status, "error": json.loads(body).get("error", "")[:120]}
    except (OSError, asyncio.IncompleteReadError, TimeoutError) as exc:
        outcome = {"status": None, "error": repr(exc)[:120]}
    seconds = time.perf_counter() - started
    sending.cancel()
    writer.close()
    return {**outcome, "seconds": round(seconds, 3), "body_bytes_sent": sent}


def _bomb_body() -> bytes:
    n = (BOMB_BYTES - 20) // len(BOMB_ITEM)
    return b'{"instances":[' + BOMB_ITEM * (n - 1) + b'{"a":1}]}'


def _pieces(body: bytes, size: int = 64 * 1024, chunked: bool = False):
    for start in range(0, len(body), size):
        piece = body[start : start + size]
        yield f"{len(piece):x}\r\n".encode() + piece + b"\r\n" if chunked else piece
    if chunked:
        yield b"0\r\n\r\n"


# --- memory ---------------------------------------------------------------------------------


def rss_mb(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


class PeakRss:
    """The highest RSS of each pid while the block runs (sampled every 20 ms)."""

    def __init__(self, pids: list[int]):
        self.pids = pids
        self.idle = {pid: rss_mb(pid) for pid in pids}
        self.peak = dict(self.idle)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        while not self._stop.wait(0.02):
            for pid in self.pids:
                self.peak[pid] = max(self.peak[pid], rss_mb(pid))

    def __enter__(self) -> PeakRss:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()

    def summary(self) -> dict[str, Any]:
        growth = {pid: self.peak[pid] - self.idle[pid] for pid in self.pids}
        return {
            "idle_mb": [round(self.idle[p], 1) for p in self.pids],
            "peak_mb": [round(self.peak[p], 1) for p in self.pids],
            "max_growth_mb": round(max(growth.values(), default=0.0), 1),
        }


# --- the run --------------------------------------------------------------------------------


def run(out_dir: Path) -> dict:
    """Run every part, print a table, write ``out_dir/hostile.json``; returns the results."""
    from tests.conftest import free_port
    from tests.support.service import start_service

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="vigil-bench-hostile-"))
    try:
        home = _train(work / "home")
        rows, body_limit = _rows(home)
        env = {"VIGIL_WORKERS": "2", "VIGIL_API_KEY": API_KEY}
        with start_service(home, free_port(), env) as server:
            results = asyncio.run(_measure(server, rows, body_limit))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    results["summary"] = _summary(results)
    (out_dir / "hostile.json").write_text(json.dumps(results, indent=2))
    print(table(results))
    return results


def _rows(home: Path) -> tuple[list[dict], int]:
    """Real instances of the default model at full float precision, and the body limit."""
    from service.validation import body_limit
    from vigil.registry.store import Registry
    from vigil.settings import get_settings

    settings = get_settings(home=home)
    bundle = Registry(settings).load_production()
    frame = bundle.reference[bundle.schema.names]
    frame = frame.sample(n=settings.max_batch_rows, replace=True, random_state=0)
    rng = random.Random(0)
    rows = [
        {k: float(v) * (1 + rng.random() * 1e-9) for k, v in row.items()}
        for row in frame.to_dict(orient="records")
    ]
    return rows, body_limit(bundle.schema, settings.max_batch_rows, settings.max_category_chars)


async def _measure(server, rows: list[dict], body_limit: int) -> dict[str, Any]:
    from tests.support.prom import scrape

    url = server.url
    one = request_bytes("/predict", json.dumps({"instances": rows[:1]}).encode())
    out: dict[str, Any] = {"body_limit_bytes": body_limit, "max_rows": len(rows)}

    await _load(url, lambda: one, BASELINE_CLIENTS, 2.0)  # warm-up
    before = await _load(url, lambda: one, BASELINE_CLIENTS, MEASURE_SECONDS)
    out["c32_before"] = _figures(before)
    print(f"c32 before: {out['c32_before']}", flush=True)

    # (a) memory bombs
    bomb = _bomb_body()
    workers = server.worker_pids()
    bombs = []
    for name, chunked in (("content_length", False), ("chunked", True)):
        head = request_bytes(
            "/predict", b"", **({"Transfer-Encoding": "chunked"} if chunked else {})
        )
        if not chunked:
            head = head.replace(b"Content-Length: 0", f"Content-Length: {len(bomb)}".encode())
        with PeakRss(workers) as rss:
            answers = await asyncio.gather(
                *(_bomb(url, _pieces(bomb, chunked=chunked), head) for _ in range(4))
            )
        bombs.append({"case": f"4 x 30 MB, {name}", "answers": answers, "rss": rss.summary()})
        print(f"(a) {bombs[-1]}", flush=True)
    full = json.dumps({"instances": rows}).encode()
    with PeakRss(workers) as rss:
        tally = await _load_once(url, request_bytes("/predict", full), 16)
    bombs.append(
        {
            "case": f"16 x {len(rows)} rows ({len(full)} bytes)",
            "statuses": tally.statuses(),
            "answer_ms": tally.latency_ms(None),
            "rss": rss.summary(),
        }
    )
    print(f"(a) {bombs[-1]}", flush=True)
    out["a_bombs"] = bombs

    # (b) normal clients under a flood of bad requests
    alone = await _load(url, lambda: one, NORMAL_CLIENTS, MEASURE_SECONDS)
    flood_requests = _flood_requests(rows, body_limit)
    rng = random.Random(1)
    stop = asyncio.Event()
    flood = Tally()
    host, port = _host_port(url)
    metrics_before = scrape(url)
    flooders = [
        asyncio.ensure_future(
            _client(
                host, port, lambda: rng.choice(flood_requests), float("inf"), flood, stop, False
            )
        )
        for _ in range(FLOOD_CLIENTS)
    ]
    started = time.perf_counter()
    with PeakRss(workers) as rss:
        during = await _load(url, lambda: one, NORMAL_CLIENTS, MEASURE_SECONDS)
    stop.set()
    await asyncio.gather(*flooders)
    flood.seconds = time.perf_counter() - started
    metrics_after = scrape(url)
    out["b_flood"] = {
        "normal_alone": _figures(alone),
        "normal_during_flood": _figures(during),
        "flood": {
            "requests_per_second": round(len(flood.answers) / flood.seconds, 1),
            "statuses": flood.statuses(),
            "errors": flood.errors,
        },
        "rejected_by_reason": _deltas(metrics_before, metrics_after, "vigil_input_rejected_total"),
        "rss": rss.summary(),
    }
    print(f"(b) {out['b_flood']}", flush=True)

    # (c) overload: clients that retry at once, then clients that wait as Retry-After says
    out["c_overload"] = await _overload(url, one, workers, polite=False)
    print(f"(c) {out['c_overload']}", flush=True)
    out["c_overload_polite"] = await _overload(url, one, workers, polite=True)
    print(f"(c) polite: {out['c_overload_polite']}", flush=True)
    after = await _load(url, lambda: one, BASELINE_CLIENTS, MEASURE_SECONDS)
    out["c32_after"] = _figures(after)
    print(f"c32 after: {out['c32_after']}", flush=True)
    return out


async def _overload(url: str, one: bytes, workers: list[int], polite: bool) -> dict[str, Any]:
    from tests.support.prom import scrape, total

    metrics_before = scrape(url)
    with PeakRss(workers) as rss:
        over = await _load(url, lambda: one, OVERLOAD_CLIENTS, OVERLOAD_SECONDS, polite)
    metrics_after = scrape(url)
    return {
        **_figures(over),
        "admitted_per_second": over.per_second(200),
        "shed_503_per_second": over.per_second(503),
        "admitted": _figures(over)["p50_p99_200"],
        "shed_latency": over.latency_ms(503),
        "503_without_retry_after": sum(
            1 for code, _, retry in over.answers if code == 503 and not retry
        ),
        "shed_by_reason": _deltas(metrics_before, metrics_after, "vigil_requests_shed_total"),
        "shed_total": total(metrics_after, "vigil_requests_shed_total")
        - total(metrics_before, "vigil_requests_shed_total"),
        "rss": rss.summary(),
    }


async def _load_once(url: str, raw: bytes, clients: int) -> Tally:
    """Each of ``clients`` connections sends ``raw`` once, all at the same time."""
    host, port = _host_port(url)
    tally = Tally()

    async def one() -> None:
        reader, writer = await asyncio.open_connection(host, port)
        started = time.perf_counter()
        writer.write(raw)
        await writer.drain()
        status, headers, _ = await read_response(reader)
        tally.answers.append((status, time.perf_counter() - started, "retry-after" in headers))
        writer.close()

    started = time.perf_counter()
    await asyncio.gather(*(one() for _ in range(clients)))
    tally.seconds = time.perf_counter() - started
    return tally


def _flood_requests(rows: list[dict], body_limit: int) -> list[bytes]:
    """What a hostile client sends: each answered 4xx, none of it predicted or logged."""
    row = json.dumps(rows[0])
    too_big = b" " * (body_limit + 1)
    return [
        # claims 30 MB: refused on its headers (the few bytes sent are all there is)
        request_bytes("/predict", b"{}").replace(b"Content-Length: 2", b"Content-Length: 31457280"),
        request_bytes("/predict", too_big),  # over the byte limit, read up to it
        request_bytes("/predict", json.dumps({"instances": [rows[0]] * 1001}).encode()),
        request_bytes("/predict", b'{"instances": [{"a": 1}, {"a": 1}, {"a": 1}]}'),
        request_bytes("/predict", b'{"instances": [' + b"{" * 5000),
        request_bytes(
            "/predict", ('{"instances": [' + row.replace("}", ', "x": NaN}') + "]}").encode()
        ),
        request_bytes("/predict", json.dumps({"instances": rows[:1]}).encode(), key=None),
        request_bytes("/predict", json.dumps({"instances": rows[:1]}).encode(), key="wrong"),
        request_bytes("/feedback", b'{"labels": [{"prediction_id": "x", "label": 7}]}'),
    ]


def _figures(tally: Tally) -> dict[str, Any]:
    return {
        "answers": len(tally.answers),
        "statuses": tally.statuses(),
        "errors": tally.errors,
        "requests_per_second_200": tally.per_second(200),
        "p50_p99_200": tally.latency_ms(200),
    }


def _deltas(before: str, after: str, name: str) -> dict[str, float]:
    from tests.support.prom import samples

    def by_reason(text: str) -> dict[str, float]:
        out: dict[str, float] = {}
        for sample, labels, value in samples(text):
            if sample == name:
                reason = labels.get("reason", "")
                out[reason] = out.get(reason, 0.0) + value
        return out

    b, a = by_reason(before), by_reason(after)
    return {k: a[k] - b.get(k, 0.0) for k in sorted(a) if a[k] - b.get(k, 0.0)}


def _summary(results: dict[str, Any]) -> dict[str, Any]:
    bomb_growth = max(b["rss"]["max_growth_mb"] for b in results["a_bombs"])
    over = results["c_overload"]
    polite = results["c_overload_polite"]
    ratio = round(
        results["c32_after"]["requests_per_second_200"]
        / max(1e-9, results["c32_before"]["requests_per_second_200"]),
        3,
    )
    measured = {
        "bomb_rss_growth_mb": bomb_growth,
        "overload_admitted_p99_ms": over["admitted"]["p99_ms"],
        "overload_polite_admitted_p99_ms": polite["admitted"]["p99_ms"],
        "overload_rss_growth_mb": max(over["rss"]["max_growth_mb"], polite["rss"]["max_growth_mb"]),
        "after_over_before_c32": ratio,
        "overload_only_200_or_503_with_retry_after": all(
            set(o["statuses"]) <= {"200", "503"} and o["503_without_retry_after"] == 0
            for o in (over, polite)
        ),
    }
    met = {
        "bomb_rss_growth_mb": bomb_growth <= TARGETS["bomb_rss_growth_mb"],
        "overload_admitted_p99_ms": (over["admitted"]["p99_ms"] or 0)
        <= TARGETS["overload_admitted_p99_ms"],
        "overload_rss_growth_mb": measured["overload_rss_growth_mb"]
        <= TARGETS["overload_rss_growth_mb"],
        "after_over_before_c32": ratio >= TARGETS["after_over_before_c32"],
    }
    return {"measured": measured, "targets": TARGETS, "met": met}


def table(results: dict[str, Any]) -> str:
    lines = [f"body limit {results['body_limit_bytes']} bytes, {results['max_rows']} rows", ""]
    lines.append(
        f"(a) {'memory bombs':<29} {'statuses':<23} {'answer s':>8}   "
        "RSS idle -> peak MB (per worker)"
    )
    for bomb in results["a_bombs"]:
        if "answers" in bomb:
            statuses = ",".join(str(a["status"]) for a in bomb["answers"])
            seconds = max(a["seconds"] for a in bomb["answers"])
        else:
            statuses = json.dumps(bomb["statuses"])
            seconds = (bomb["answer_ms"]["p99_ms"] or 0) / 1000
        rss = bomb["rss"]
        lines.append(
            f"    {bomb['case']:<29} {statuses:<23} {seconds:>8.3f}   "
            f"{rss['idle_mb']} -> {rss['peak_mb']} (+{rss['max_growth_mb']})"
        )
    flood = results["b_flood"]
    lines += ["", "(b) 1-row, 8 normal clients        req/s     p50 ms    p99 ms"]
    for name in ("normal_alone", "normal_during_flood"):
        f = flood[name]
        lines.append(
            f"    {name:<29} {f['requests_per_second_200']:>7} {f['p50_p99_200']['p50_ms']:>10} "
            f"{f['p50_p99_200']['p99_ms']:>9}"
        )
    lines.append(
        f"    flood: {flood['flood']['requests_per_second']} req/s of bad requests "
        f"{flood['flood']['statuses']}, rejected by reason {flood['rejected_by_reason']}, "
        f"RSS +{flood['rss']['max_growth_mb']} MB"
    )
    for key, title in (
        ("c_overload", "retrying at once"),
        ("c_overload_polite", "honouring Retry-After"),
    ):
        over = results[key]
        lines += [
            "",
            f"(c) overload, {OVERLOAD_CLIENTS} clients {title}, {OVERLOAD_SECONDS:g} s",
            f"    answers {over['answers']} {over['statuses']}, transport errors {over['errors']}",
            f"    admitted {over['admitted_per_second']} req/s,"
            f" p50 {over['admitted']['p50_ms']} ms, p99 {over['admitted']['p99_ms']} ms;"
            f" shed {over['shed_503_per_second']} req/s"
            f" (p99 {over['shed_latency']['p99_ms']} ms), 503 without Retry-After:"
            f" {over['503_without_retry_after']}",
            f"    vigil_requests_shed_total +{over['shed_total']:g} {over['shed_by_reason']};"
            f" RSS +{over['rss']['max_growth_mb']} MB",
        ]
    lines += [
        "",
        f"c=32 1-row before (a) {results['c32_before']['requests_per_second_200']} req/s, "
        f"after (c) {results['c32_after']['requests_per_second_200']} req/s",
        "",
    ]
    lines += summary_lines(results["summary"])
    return "\n".join(lines)


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(description="Hostile load against the service.")
    parser.add_argument("--out", type=Path, default=Path("bench-results"))
    run(parser.parse_args().out)
