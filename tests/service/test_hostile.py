"""Hostile callers against a real 2-worker `bentoml serve`: a keyless chunked body refused
before it is read, overload shed with 503 + Retry-After and counted, scanners that cannot grow
/metrics, and an empty VIGIL_API_KEY refused at start."""

from __future__ import annotations

import asyncio
import json
import random
import socket
import string
import subprocess
import sys

import httpx
import pytest

from tests.conftest import free_port
from tests.service.conftest import API_KEY, copy_home
from tests.support.prom import samples, scrape, total
from tests.support.service import ROOT, service_env, start_service

pytestmark = pytest.mark.integration

AUTH = {"Authorization": f"Bearer {API_KEY}"}
MAX_IN_FLIGHT = 2  # per worker: a few concurrent clients are already too many
ANSWER_TIMEOUT = 5.0


@pytest.fixture(scope="module")
def server(trained_home_template, tmp_path_factory):
    home = copy_home(trained_home_template, tmp_path_factory.mktemp("hostile") / "home")
    env = {
        "VIGIL_API_KEY": API_KEY,
        "VIGIL_WORKERS": "2",
        "VIGIL_MAX_IN_FLIGHT": str(MAX_IN_FLIGHT),
    }
    with start_service(home, free_port(), env) as handle:
        yield handle


def _connect(url: str) -> socket.socket:
    host, port = url.removeprefix("http://").split(":")
    return socket.create_connection((host, int(port)), timeout=ANSWER_TIMEOUT)


def _read_response(sock: socket.socket) -> tuple[int, dict[str, str], bytes]:
    reader = sock.makefile("rb")
    status = int(reader.readline().split()[1])
    headers = {}
    while (line := reader.readline().strip()) != b"":
        name, _, value = line.decode().partition(":")
        headers[name.strip().lower()] = value.strip()
    body = reader.read(int(headers.get("content-length", "0")))
    return status, headers, body


def _chunk(data: bytes) -> bytes:
    return f"{len(data):x}\r\n".encode() + data + b"\r\n"


def _chunked_head(*headers: str) -> bytes:
    lines = [
        "POST /predict HTTP/1.1",
        "Host: test",
        "Content-Type: application/json",
        "Transfer-Encoding: chunked",
        *headers,
    ]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def test_a_chunked_body_without_the_key_is_refused_before_it_is_read(server, default_rows):
    body = json.dumps({"instances": default_rows[:20]}).encode()
    first, rest = body[:1000], body[1000:]
    with _connect(server.url) as sock:
        # Headers and the first chunk only: the rest is never sent, and the answer comes anyway.
        sock.sendall(_chunked_head() + _chunk(first))
        status, headers, answer = _read_response(sock)
    assert status == 401, answer
    assert headers["www-authenticate"] == "Bearer"
    assert set(json.loads(answer)) == {"error", "detail"}

    # With the key the same start is read on: no answer until the body is complete.
    with _connect(server.url) as sock:
        sock.sendall(_chunked_head(f"Authorization: Bearer {API_KEY}") + _chunk(first))
        sock.settimeout(1.0)
        with pytest.raises(TimeoutError):
            sock.recv(1)
        sock.settimeout(ANSWER_TIMEOUT)
        sock.sendall(_chunk(rest) + b"0\r\n\r\n")
        status, _, answer = _read_response(sock)
    assert status == 200, answer
    assert len(json.loads(answer)["predictions"]) == 20


async def _flood(url: str, body: dict, clients: int, requests_each: int) -> list[httpx.Response]:
    async def client() -> list[httpx.Response]:
        # A connection per client, as independent callers have: both workers get some.
        async with httpx.AsyncClient(headers=AUTH, timeout=30) as http:
            return [await http.post(f"{url}/predict", json=body) for _ in range(requests_each)]

    answers = await asyncio.gather(*(client() for _ in range(clients)))
    return [response for batch in answers for response in batch]


def test_overload_is_shed_with_503_and_retry_after(server, default_rows):
    before = scrape(server.url)
    answers = asyncio.run(_flood(server.url, {"instances": default_rows[:1]}, 48, 12))
    statuses = [r.status_code for r in answers]
    shed = [r for r in answers if r.status_code == 503]
    assert set(statuses) <= {200, 503}, sorted(set(statuses))
    assert shed, "48 concurrent clients against 2 in flight per worker: nothing was shed"
    assert statuses.count(200) > 0
    for response in shed:
        assert int(response.headers["retry-after"]) >= 1
        body = response.json()
        assert set(body) == {"error", "detail"} and "busy" in body["error"], body
    after = scrape(server.url)
    counted = total(after, "vigil_requests_shed_total") - total(before, "vigil_requests_shed_total")
    assert counted == len(shed)
    assert total(after, "vigil_requests_shed_total", reason="in_flight") > total(
        before, "vigil_requests_shed_total", reason="in_flight"
    )
    # Once the flood is over the service answers as usual.
    response = httpx.post(
        f"{server.url}/predict", json={"instances": default_rows[:1]}, headers=AUTH
    )
    assert response.status_code == 200, response.text


def _random_path(rng: random.Random) -> str:
    alphabet = string.ascii_letters + string.digits + "-._~%"
    segments = [
        "".join(rng.choices(alphabet, k=rng.randint(1, 12))) for _ in range(rng.randint(1, 4))
    ]
    prefix = rng.choice(["/", "/static_content/", "/assets/", "/api/", "/predict/"])
    return prefix + "/".join(segments)


def _series(text: str) -> set[tuple[str, tuple]]:
    return {(name, tuple(sorted(labels.items()))) for name, labels, _ in samples(text)}


def test_a_thousand_random_paths_do_not_grow_metrics(server):
    rng = random.Random(1000)
    methods = ("GET", "POST")
    with httpx.Client(timeout=10) as http:

        def hit(path: str, method: str) -> None:
            http.request(method, f"{server.url}{path}", content=b"{}")

        # Each kind of path, method and answer once first (a "." under the static folder is
        # redirected): the series they share exist from here on.
        for path in ("/x", "/static_content/x", "/static_content/.", "/assets/x", "/predict/x"):
            for method in methods:
                hit(path, method)
        scrape(server.url)
        before = _series(scrape(server.url))
        for _ in range(1000):
            hit(_random_path(rng), rng.choice(methods))
        after = _series(scrape(server.url))
    assert after == before, sorted(after - before)[:20]


def test_an_empty_api_key_is_refused_at_start(tmp_path):
    env = service_env(tmp_path / "home", free_port(), {"VIGIL_API_KEY": ""})
    run = subprocess.run(
        [sys.executable, "-m", "service", "serve"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode != 0
    output = (run.stdout + run.stderr).strip()
    assert "Traceback" not in output and "pydantic" not in output, output
    assert len(output.splitlines()) == 1, output
    assert "VIGIL_API_KEY" in output and "empty" in output, output
