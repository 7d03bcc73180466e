"""The verifier as an HTTP service, for RL trainers on other machines.

    rl-verifier serve --host 127.0.0.1 --port 8000

``POST /verify``::

    {"items": [{"response": "... \\\\boxed{4}", "ground_truth": "4",
                "question": null, "options": null}],
     "mode": "strict", "multi_box": "last", "timeout": 5.0}
    -> {"results": [{"correct": true, "extracted": "4", "reason": "match", "ms": 0.3}],
        "elapsed_ms": 1.2}

``GET /health`` -> ``{"status": "ok", "workers": N, ...}``.

Bounds: request bodies over ``max_body_bytes`` get 413, more than ``max_items``
items get 413, more than ``max_concurrency`` requests being verified at once get
429 with ``Retry-After``; malformed JSON or fields get 422 with the offending
field named. Checks run in the sandboxed pool, off the event loop.
"""

from __future__ import annotations

import asyncio
import time
from typing import Literal

from fastapi import FastAPI, HTTPException
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from rewards.verifier import DEFAULT_TIMEOUT, Verifier

API_VERSION = "1"


class Item(BaseModel):
    response: str
    ground_truth: str | int | float
    question: str | None = None
    options: dict[str, str] | None = None


class VerifyRequest(BaseModel):
    items: list[Item]
    mode: Literal["strict", "lenient"] = "strict"
    multi_box: Literal["last", "all_agree"] = "last"
    timeout: float | None = Field(default=None, gt=0, description="seconds per check; capped by the server's")


class VerdictOut(BaseModel):
    correct: bool
    extracted: str | None
    reason: str
    ms: float


class VerifyResponse(BaseModel):
    results: list[VerdictOut]
    elapsed_ms: float


class _BodyLimit:
    """ASGI middleware: refuse bodies over ``limit`` bytes (declared or streamed)."""

    def __init__(self, app, limit: int):
        self.app, self.limit = app, limit

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.limit:
            return await self._reject(send)
        seen = 0

        async def counting_receive():
            nonlocal seen
            msg = await receive()
            if msg["type"] == "http.request":
                seen += len(msg.get("body", b""))
                if seen > self.limit:
                    raise _TooLarge()
            return msg

        try:
            await self.app(scope, counting_receive, send)
        except _TooLarge:
            await self._reject(send)

    async def _reject(self, send):
        resp = JSONResponse({"detail": f"request body larger than {self.limit} bytes"}, status_code=413)
        await resp({"type": "http"}, None, send)


class _TooLarge(Exception):
    pass


def create_app(
    verifier: Verifier | None = None,
    *,
    workers: int | None = None,
    timeout: float = DEFAULT_TIMEOUT,
    max_items: int = 4096,
    max_body_bytes: int = 32 * 1024 * 1024,
    max_concurrency: int = 8,
) -> FastAPI:
    """Build the app; pass a ``verifier`` to share one, or let it own one."""
    owned = verifier is None
    state = {"verifier": verifier, "active": 0, "served": 0}

    async def lifespan(app):
        if state["verifier"] is None:
            state["verifier"] = Verifier(workers=workers, timeout=timeout)
        await asyncio.to_thread(state["verifier"].pool.start)
        yield
        if owned:
            state["verifier"].close()

    app = FastAPI(title="math answer verifier", version=API_VERSION, lifespan=lifespan)

    @app.get("/health")
    async def health() -> dict:
        v: Verifier = state["verifier"]
        return {
            "status": "ok",
            "workers": v.workers,
            "timeout": v.timeout,
            "active_requests": state["active"],
            "requests_served": state["served"],
            "workers_replaced": v.pool.replaced,
            "max_items": max_items,
        }

    @app.post("/verify", response_model=VerifyResponse)
    async def verify(req: VerifyRequest) -> VerifyResponse:
        if len(req.items) > max_items:
            raise HTTPException(413, f"{len(req.items)} items in one request; the limit is {max_items}")
        if state["active"] >= max_concurrency:
            raise HTTPException(
                429, f"{max_concurrency} requests already being verified; retry shortly", headers={"Retry-After": "1"}
            )
        state["active"] += 1
        t0 = time.perf_counter()
        try:
            v: Verifier = state["verifier"]
            limit = min(req.timeout or v.timeout, v.timeout)
            verdicts = await asyncio.to_thread(
                v.verify_batch,
                [it.response for it in req.items],
                [it.ground_truth for it in req.items],
                mode=req.mode,
                multi_box=req.multi_box,
                questions=[it.question for it in req.items],
                options=[it.options for it in req.items],
                timeout=limit,
            )
        finally:
            state["active"] -= 1
        state["served"] += 1
        return VerifyResponse(
            results=[VerdictOut(**v.to_dict()) for v in verdicts],
            elapsed_ms=round((time.perf_counter() - t0) * 1000, 3),
        )

    app.add_middleware(_BodyLimit, limit=max_body_bytes)
    return app


def serve(host: str = "127.0.0.1", port: int = 8000, **kwargs) -> None:
    """Run the service with uvicorn until interrupted."""
    import uvicorn

    uvicorn.run(create_app(**kwargs), host=host, port=port, log_level="info")
