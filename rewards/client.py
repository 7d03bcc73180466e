"""Client for the verifier service, with retries, for RL trainers.

    client = VerifierClient("http://verifier-host:8000")
    verdicts = client.verify([{"response": r, "ground_truth": g} for r, g in pairs])

Large lists are sent in chunks of ``batch_size``. One retry policy for the sync and the
async calls: connection errors, 429 and 5xx answers are retried, after the server's
``Retry-After`` when it sends one (capped at ``max_retry_after`` seconds), else after an
exponential backoff; 4xx answers (a bad request) raise :class:`VerifierServiceError` at
once, with the server's message. Connections are kept open and reused across calls (one
HTTP client per ``VerifierClient``, and per event loop for the async calls); ``close()``
or a ``with`` block releases them.
"""

from __future__ import annotations

import asyncio
import email.utils
import threading
import time
from collections.abc import Iterable

import httpx

RETRY_STATUS = {429, 500, 502, 503, 504}


class VerifierServiceError(RuntimeError):
    pass


class VerifierClient:
    def __init__(
        self,
        base_url: str,
        *,
        timeout: float = 120.0,
        retries: int = 4,
        backoff: float = 0.5,
        batch_size: int = 1024,
        max_retry_after: float = 60.0,
    ):
        self.base_url = base_url.rstrip("/")
        self.timeout, self.retries, self.backoff, self.batch_size = timeout, retries, backoff, batch_size
        self.max_retry_after = max_retry_after
        self._client: httpx.Client | None = None
        self._lock = threading.Lock()
        self._async_clients: dict[asyncio.AbstractEventLoop, httpx.AsyncClient] = {}  # one per event loop

    # -- connections ------------------------------------------------------------
    def _sync(self) -> httpx.Client:
        with self._lock:
            if self._client is None or self._client.is_closed:
                self._client = httpx.Client(timeout=self.timeout)
            return self._client

    def _async(self) -> httpx.AsyncClient:
        loop = asyncio.get_running_loop()
        for gone in [x for x in self._async_clients if x.is_closed()]:  # asyncio.run() ends its loop
            del self._async_clients[gone]
        c = self._async_clients.get(loop)
        if c is None or c.is_closed:
            c = self._async_clients[loop] = httpx.AsyncClient(timeout=self.timeout)
        return c

    def close(self) -> None:
        """Close the sync connections (async clients close with their event loop's end)."""
        with self._lock:
            if self._client is not None:
                self._client.close()
                self._client = None

    def __enter__(self) -> VerifierClient:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- the retry policy -------------------------------------------------------
    def _outcome(self, attempt: int, response: httpx.Response | None = None, error: Exception | None = None):
        """``(results, None)`` for a 200, ``(None, seconds to wait)`` to try again; raises when
        retrying cannot help or the attempts are spent."""
        if response is not None and response.status_code == 200:
            return response.json()["results"], None
        last = attempt >= self.retries
        if error is not None:
            if last:
                raise VerifierServiceError(f"verifier service unreachable at {self.base_url}: {error}") from error
            return None, self.backoff * 2**attempt
        if response.status_code not in RETRY_STATUS or last:
            raise VerifierServiceError(f"verifier service answered {response.status_code}: {response.text[:500]}")
        return None, self._retry_after(response) or self.backoff * 2**attempt

    def _retry_after(self, response: httpx.Response) -> float | None:
        """The server's ``Retry-After`` (seconds or an HTTP date), capped; ``None`` when absent."""
        value = response.headers.get("retry-after", "").strip()
        if not value:
            return None
        try:
            seconds = float(value)
        except ValueError:
            try:
                seconds = email.utils.parsedate_to_datetime(value).timestamp() - time.time()
            except (TypeError, ValueError):
                return None
        return min(max(seconds, 0.0), self.max_retry_after)

    def _bodies(self, items: list[dict], mode: str, timeout: float | None, multi_box: str):
        for i in range(0, len(items), self.batch_size):
            yield {"items": items[i : i + self.batch_size], "mode": mode, "multi_box": multi_box, "timeout": timeout}

    # -- sync ---------------------------------------------------------------
    def health(self) -> dict:
        r = self._sync().get(f"{self.base_url}/health")
        r.raise_for_status()
        return r.json()

    def verify(
        self, items: Iterable[dict], mode: str = "strict", timeout: float | None = None, multi_box: str = "last"
    ) -> list[dict]:
        out: list[dict] = []
        for body in self._bodies(list(items), mode, timeout, multi_box):
            for attempt in range(self.retries + 1):
                try:
                    results, wait = self._outcome(
                        attempt, response=self._sync().post(f"{self.base_url}/verify", json=body)
                    )
                except httpx.TransportError as e:
                    results, wait = self._outcome(attempt, error=e)
                if results is not None:
                    out.extend(results)
                    break
                time.sleep(wait)
        return out

    # -- async --------------------------------------------------------------
    async def averify(
        self, items: Iterable[dict], mode: str = "strict", timeout: float | None = None, multi_box: str = "last"
    ) -> list[dict]:
        out: list[dict] = []
        for body in self._bodies(list(items), mode, timeout, multi_box):
            for attempt in range(self.retries + 1):
                try:
                    response = await self._async().post(f"{self.base_url}/verify", json=body)
                    results, wait = self._outcome(attempt, response=response)
                except httpx.TransportError as e:
                    results, wait = self._outcome(attempt, error=e)
                if results is not None:
                    out.extend(results)
                    break
                await asyncio.sleep(wait)
        return out
