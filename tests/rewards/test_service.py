"""The verifier service on a real uvicorn server on loopback, and its client."""

import socket
import threading
import time

import httpx
import pytest
import uvicorn

from rewards.client import VerifierClient, VerifierServiceError
from rewards.sandbox import WorkerPool
from rewards.service import create_app
from rewards.verifier import Verifier


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class _Server:
    def __init__(self, app):
        self.port = _free_port()
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self):
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            assert time.monotonic() < deadline, "server did not start"
            time.sleep(0.05)
        return f"http://127.0.0.1:{self.port}"

    def __exit__(self, *exc):
        self.server.should_exit = True
        self.thread.join(timeout=10)


@pytest.fixture(scope="module")
def verifier():
    with Verifier(workers=2, timeout=3) as v:
        yield v


@pytest.fixture(scope="module")
def url(verifier):
    with _Server(create_app(verifier, max_items=50, max_body_bytes=200_000)) as u:
        yield u


def test_round_trip_through_client(url):
    client = VerifierClient(url, batch_size=20)
    items = [{"response": f"so \\boxed{{{i}}}", "ground_truth": str(i if i % 3 else i + 1)} for i in range(45)]
    results = client.verify(items)  # three chunks of <= 20
    assert len(results) == 45
    assert [r["correct"] for r in results] == [bool(i % 3) for i in range(45)]
    assert all(r["reason"] in ("match", "mismatch") for r in results)
    health = client.health()
    assert health["status"] == "ok" and health["workers"] == 2 and health["requests_served"] >= 3


def test_hostile_item_does_not_break_the_batch(url):
    items = [
        {"response": "\\boxed{10^{10^{10}}}", "ground_truth": "3"},
        {"response": "\\boxed{" + "{" * 20000, "ground_truth": "1"},
        {"response": "\x00\\boxed{7}", "ground_truth": 7},
    ]
    results = VerifierClient(url).verify(items)
    assert [r["correct"] for r in results] == [False, False, True]


def test_bad_requests_get_clear_4xx(url):
    r = httpx.post(f"{url}/verify", json={"items": [{"resp": "x"}]})
    assert r.status_code == 422 and "response" in r.text and "ground_truth" in r.text
    r = httpx.post(f"{url}/verify", content=b"not json", headers={"content-type": "application/json"})
    assert r.status_code == 422
    r = httpx.post(f"{url}/verify", json={"items": [{"response": "a", "ground_truth": "1"}] * 51})
    assert r.status_code == 413 and "limit is 50" in r.text
    r = httpx.post(f"{url}/verify", json={"items": [{"response": "a" * 300_000, "ground_truth": "1"}]})
    assert r.status_code == 413 and "larger than" in r.text
    r = httpx.post(f"{url}/verify", json={"items": [], "mode": "sloppy"})
    assert r.status_code == 422
    with pytest.raises(VerifierServiceError, match="422"):
        VerifierClient(url, retries=3).verify([{"nope": 1}])  # 4xx is not retried


@pytest.mark.slow
def test_concurrency_limit_429_and_client_retry():
    v = Verifier(workers=1, timeout=5, fast_path=False)  # every check goes to the (slow) pool
    v.pool = WorkerPool("tests.service_tasks:slow_check", workers=1, timeout=5)
    with v, _Server(create_app(v, max_concurrency=1)) as u:
        item = {"items": [{"response": "\\boxed{1}", "ground_truth": "1"}]}
        first = {}
        t = threading.Thread(target=lambda: first.update(r=httpx.post(f"{u}/verify", json=item, timeout=30)))
        t.start()
        deadline = time.monotonic() + 5
        while httpx.get(f"{u}/health").json()["active_requests"] == 0:
            assert time.monotonic() < deadline
            time.sleep(0.02)
        busy = httpx.post(f"{u}/verify", json=item)
        assert busy.status_code == 429 and busy.headers["retry-after"] == "1"
        # The client backs off and succeeds once the first request is done.
        assert VerifierClient(u, retries=5, backoff=0.3).verify(item["items"])[0]["correct"] is True
        t.join()
        assert first["r"].status_code == 200


def test_client_gives_up_on_unreachable_server():
    client = VerifierClient(f"http://127.0.0.1:{_free_port()}", retries=2, backoff=0.01, timeout=2)
    with pytest.raises(VerifierServiceError, match="unreachable"):
        client.verify([{"response": "\\boxed{1}", "ground_truth": "1"}])


def test_async_client_round_trip_and_unreachable(url):
    import asyncio

    items = [
        {"response": "\\boxed{\\frac{1}{2}}", "ground_truth": "0.5"},
        {"response": "\\boxed{2}", "ground_truth": "3"},
    ]
    results = asyncio.run(VerifierClient(url, batch_size=1).averify(items))
    assert [r["correct"] for r in results] == [True, False]
    dead = VerifierClient(f"http://127.0.0.1:{_free_port()}", retries=1, backoff=0.01, timeout=2)
    with pytest.raises(VerifierServiceError, match="unreachable"):
        asyncio.run(dead.averify(items))


def _flaky_app(busy_answers: int, retry_after: str | None):
    """A stand-in service on loopback: ``busy_answers`` 429s (with ``Retry-After`` when given),
    then the right answer; it records each request's arrival and client port."""
    from fastapi import FastAPI, Request
    from fastapi.responses import JSONResponse

    app, seen = FastAPI(), []

    @app.post("/verify")
    async def verify(request: Request):
        seen.append((time.monotonic(), request.client.port))
        if len(seen) <= busy_answers:
            return JSONResponse(
                {"detail": "busy"}, status_code=429, headers={"Retry-After": retry_after} if retry_after else None
            )
        body = await request.json()
        return {"results": [{"correct": True} for _ in body["items"]]}

    return app, seen


def test_client_waits_as_long_as_retry_after_says():
    app, seen = _flaky_app(busy_answers=1, retry_after="1")
    with _Server(app) as u, VerifierClient(u, retries=3, backoff=0.01) as client:
        assert client.verify([{"response": "x", "ground_truth": "1"}]) == [{"correct": True}]
    assert len(seen) == 2
    assert seen[1][0] - seen[0][0] >= 0.95  # the server's 1 s, not the 0.01 s backoff


def test_client_without_retry_after_backs_off_and_caps_a_long_one():
    app, seen = _flaky_app(busy_answers=2, retry_after=None)
    with _Server(app) as u, VerifierClient(u, retries=3, backoff=0.01) as client:
        assert client.verify([{"response": "x", "ground_truth": "1"}]) == [{"correct": True}]
    assert len(seen) == 3 and seen[2][0] - seen[0][0] < 0.9
    app, seen = _flaky_app(busy_answers=1, retry_after="3600")
    with _Server(app) as u, VerifierClient(u, retries=1, backoff=0.01, max_retry_after=0.2) as client:
        t = time.monotonic()
        assert client.verify([{"response": "x", "ground_truth": "1"}]) == [{"correct": True}]
        assert time.monotonic() - t < 2  # an hour's Retry-After is cut to max_retry_after


def test_client_reuses_its_connection_across_calls():
    import asyncio

    app, seen = _flaky_app(busy_answers=0, retry_after=None)
    with _Server(app) as u, VerifierClient(u) as client:
        for _ in range(3):
            client.verify([{"response": "x", "ground_truth": "1"}])

        async def three():
            for _ in range(3):
                await client.averify([{"response": "x", "ground_truth": "1"}])

        asyncio.run(three())
    sync_ports, async_ports = {p for _, p in seen[:3]}, {p for _, p in seen[3:]}
    assert len(seen) == 6 and len(sync_ports) == 1 and len(async_ports) == 1  # one kept-alive connection each
