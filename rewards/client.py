"""Client for the verifier service, with retries, for RL trainers.

    client = VerifierClient("http://verifier-host:8000")
    verdicts = client.verify([{"response": r, "ground_truth": g} for r, g in pairs])

Large lists are sent in chunks of ``batch_size``; connection errors, 429 and 5xx
answers are retried with exponential backoff; 4xx answers (a bad request) raise
:class:`VerifierServiceError` at once, with the server's message.
"""

from __future__ import annotations

import asyncio
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
    ):
        self.base_url = base_url.rstrip("/")
        self.timeout, self.retries, self.backoff, self.batch_size = timeout, retries, backoff, batch_size

    # -- sync ---------------------------------------------------------------
    def health(self) -> dict:
        with httpx.Client(timeout=self.timeout) as c:
            r = c.get(f"{self.base_url}/health")
            r.raise_for_status()
            return r.json()

    def verify(
        self, items: Iterable[dict], mode: str = "strict", timeout: float | None = None, multi_box: str = "last"
    ) -> list[dict]:
        items = list(items)
        out: list[dict] = []
        with httpx.Client(timeout=self.timeout) as c:
            for i in range(0, len(items), self.batch_size):
                body = {
                    "items": items[i : i + self.batch_size],
                    "mode": mode,
                    "multi_box": multi_box,
                    "timeout": timeout,
                }
                out.extend(self._post(c, body))
        return out

    def _post(self, c: httpx.Client, body: dict) -> list[dict]:
        for attempt in range(self.retries + 1):
            try:
                results = self._results(c.post(f"{self.base_url}/verify", json=body), attempt)
            except httpx.TransportError as e:
                results = self._unreachable(e, attempt)
            if results is not None:
                return results
            time.sleep(self.backoff * 2**attempt)
        raise AssertionError("unreachable")

    def _results(self, r: httpx.Response, attempt: int) -> list[dict] | None:
        """The results of a 200; ``None`` to retry; raises when retrying cannot help."""
        if r.status_code == 200:
            return r.json()["results"]
        if r.status_code not in RETRY_STATUS or attempt == self.retries:
            raise VerifierServiceError(f"verifier service answered {r.status_code}: {r.text[:500]}")
        return None

    def _unreachable(self, e: Exception, attempt: int) -> None:
        if attempt == self.retries:
            raise VerifierServiceError(f"verifier service unreachable at {self.base_url}: {e}") from e
        return None

    # -- async --------------------------------------------------------------
    async def averify(
        self, items: Iterable[dict], mode: str = "strict", timeout: float | None = None, multi_box: str = "last"
    ) -> list[dict]:
        items = list(items)
        out: list[dict] = []
        async with httpx.AsyncClient(timeout=self.timeout) as c:
            for i in range(0, len(items), self.batch_size):
                body = {
                    "items": items[i : i + self.batch_size],
                    "mode": mode,
                    "multi_box": multi_box,
                    "timeout": timeout,
                }
                for attempt in range(self.retries + 1):
                    try:
                        results = self._results(await c.post(f"{self.base_url}/verify", json=body), attempt)
                    except httpx.TransportError as e:
                        results = self._unreachable(e, attempt)
                    if results is not None:
                        out.extend(results)
                        break
                    await asyncio.sleep(self.backoff * 2**attempt)
        return out
