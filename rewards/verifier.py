"""The verifier's public Python API.

>>> from rewards import verify
>>> verify(r"... so the answer is \\boxed{\\frac{1}{2}}", "0.5")
Verdict(correct=True, extracted='\\\\frac{1}{2}', reason='match', ms=0.4)

Every check runs in a sandboxed worker process (see :mod:`rewards.sandbox`) under a
hard wall-clock timeout and a memory limit; a check that exceeds either comes
back as ``reason="timeout"`` / ``"error"``, never as an exception. Safe to call
from threads, asyncio (:func:`averify`) and Ray actors.

:func:`verify_batch` spreads a batch over all workers (one per core by default).
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor

from rewards.check import (
    FORM_TEXT,
    MAX_RESPONSE_CHARS,
    REASON_ERROR,
    REASON_TIMEOUT,
    AnswerForm,
    AnswerGroups,
    Verdict,
    check,
)
from rewards.extract import LAST, MODES, MULTI_BOX_MODES, STRICT
from rewards.sandbox import OK, TIMEOUT, WorkerPool

DEFAULT_TIMEOUT = 5.0
DEFAULT_MEMORY_MB = 2048


class Verifier:
    """A pool of sandboxed workers plus the verification settings.

    ``fast_path`` (default on): checks that need no parsing (integers, decimals,
    fractions, option letters, identical answers; see
    :func:`rewards.equivalence.compare`) are decided in the calling thread, in
    bounded string and integer work; the rest go to the sandboxed workers.

    Use one per process (see :func:`get_verifier`) and share it between threads.
    """

    def __init__(
        self,
        workers: int | None = None,
        timeout: float = DEFAULT_TIMEOUT,
        memory_mb: int = DEFAULT_MEMORY_MB,
        mode: str = STRICT,
        multi_box: str = LAST,
        fast_path: bool = True,
    ):
        if mode not in MODES:
            raise ValueError(f"unknown mode {mode!r}; choose one of {MODES}")
        if multi_box not in MULTI_BOX_MODES:
            raise ValueError(f"unknown multi_box rule {multi_box!r}; choose one of {MULTI_BOX_MODES}")
        self.mode = mode
        self.multi_box = multi_box
        self.fast_path = fast_path
        self.timeout = float(timeout)
        self.pool = WorkerPool("rewards.check:run", workers=workers, timeout=timeout, memory_mb=memory_mb)

    @property
    def workers(self) -> int:
        return self.pool.size

    def verify(
        self,
        response: str,
        ground_truth: object,
        *,
        mode: str | None = None,
        question: str | None = None,
        options: dict[str, str] | None = None,
        timeout: float | None = None,
        multi_box: str | None = None,
    ) -> Verdict:
        """Check one response; see :func:`rewards.check.check` for the rules."""
        args = self._prepare(response, ground_truth, mode, question, options, multi_box)
        if self.fast_path:
            fast = check(*args, fast_only=True)
            if fast is not None:
                return fast
        return self._sandboxed(args, timeout)

    def _prepare(self, response, ground_truth, mode, question, options, multi_box) -> tuple:
        """``check``'s positional arguments, the response cut to what may cross the pipe."""
        if not isinstance(response, str):
            response = "" if response is None else str(response)
        response = response[-MAX_RESPONSE_CHARS:]  # cut before it crosses the pipe
        if isinstance(question, str):
            question = question[:MAX_RESPONSE_CHARS]
        return response, ground_truth, mode or self.mode, question, options, multi_box or self.multi_box

    def _sandboxed(self, args: tuple, timeout: float | None) -> Verdict:
        """One check in a worker, bounded by ``timeout`` (default: the verifier's)."""
        response, ground_truth, mode, question, options, multi_box = args
        limit = self.timeout if timeout is None else float(timeout)
        status, value = self.pool.call(
            "check",
            response,
            ground_truth,
            mode,
            question,
            options,
            multi_box,
            timeout=limit,
        )
        if status == OK and isinstance(value, Verdict):
            return value
        if status == TIMEOUT:
            return Verdict(False, None, REASON_TIMEOUT, round(limit * 1000, 3))
        return Verdict(False, None, REASON_ERROR, 0.0)

    def verify_batch(
        self,
        responses: Sequence[str],
        ground_truths: Sequence[object],
        *,
        mode: str | None = None,
        questions: Sequence[str | None] | None = None,
        options: Sequence[dict | None] | None = None,
        timeout: float | None = None,
        on_result: Callable[[int, Verdict], None] | None = None,
        multi_box: str | None = None,
    ) -> list[Verdict]:
        """Check many responses in parallel on all workers; results in input order.

        ``on_result(index, verdict)`` is called as each check finishes (for
        progress bars): in the calling thread for checks the fast path decides, first,
        then on a dispatcher thread for the sandboxed rest.
        """
        if len(responses) != len(ground_truths):
            raise ValueError(f"{len(responses)} responses but {len(ground_truths)} ground truths")
        n = len(responses)
        qs = questions if questions is not None else [None] * n
        os_ = options if options is not None else [None] * n
        args = [self._prepare(responses[i], ground_truths[i], mode, qs[i], os_[i], multi_box) for i in range(n)]
        out: list = [None] * n
        rest = list(range(n))
        if self.fast_path:  # decided in this thread, without a thread pool's hand-offs
            rest = []
            for i in range(n):
                out[i] = check(*args[i], fast_only=True)
                if out[i] is None:
                    rest.append(i)
                elif on_result is not None:
                    on_result(i, out[i])
        slow = self._map(
            lambda k: self._sandboxed(args[rest[k]], timeout),
            len(rest),
            None if on_result is None else lambda k, v: on_result(rest[k], v),
        )
        for i, v in zip(rest, slow):
            out[i] = v
        return out

    def _map(self, fn: Callable[[int], object], n: int, on_result: Callable | None) -> list:
        """``[fn(0), ..., fn(n-1)]`` on one thread per worker, in order; ``on_result(i, value)`` as each finishes."""
        out: list = [None] * n

        def one(i: int) -> None:
            out[i] = fn(i)
            if on_result is not None:
                on_result(i, out[i])

        if n:
            self.pool.start()
            with ThreadPoolExecutor(max_workers=min(n, self.workers), thread_name_prefix="verify") as ex:
                list(ex.map(one, range(n)))
        return out

    def group_answers(
        self,
        responses_per_problem: Sequence[Sequence[str]],
        *,
        mode: str | None = None,
        timeout: float | None = None,
        on_result: Callable[[int, AnswerGroups], None] | None = None,
    ) -> list[AnswerGroups]:
        """For each problem, its responses' final answers grouped by equivalence
        (see :class:`rewards.check.AnswerGroups`): the basis of majority voting.

        Each problem is one sandboxed call, bounded by ``timeout`` (default: the
        verifier's timeout per response, at least 4 and at most 60 s); one that
        runs out falls back to grouping exact answer strings, extracted in a
        second bounded call (``reason`` says so)."""

        def one(i: int) -> AnswerGroups:
            resp = [("" if r is None else str(r))[-MAX_RESPONSE_CHARS:] for r in responses_per_problem[i]]
            # default budget: a check's timeout per response, at least 4 and at most 60 s' worth
            limit = (
                float(timeout) if timeout is not None else max(4 * self.timeout, min(self.timeout * len(resp), 60.0))
            )
            status, value = self.pool.call(
                "group_answers", resp, mode or self.mode, True, self.multi_box, timeout=limit
            )
            if status != OK or not isinstance(value, AnswerGroups):
                why = "timeout" if status == TIMEOUT else "error"
                status, value = self.pool.call(
                    "group_answers", resp, mode or self.mode, False, self.multi_box, timeout=limit
                )
                if status == OK and isinstance(value, AnswerGroups):
                    value = dataclasses.replace(value, reason=f"{why}; grouped exact strings")
                else:
                    value = AnswerGroups((None,) * len(resp), (-1,) * len(resp), why)
            return value

        return self._map(one, len(responses_per_problem), on_result)

    def answer_forms(
        self, answers: Sequence[object], *, on_result: Callable[[int, AnswerForm], None] | None = None
    ) -> list[AnswerForm]:
        """How the verifier reads each reference answer (kind, canonical form,
        self-match; see :class:`rewards.check.AnswerForm`), sandboxed like a check:
        one that runs out of time comes back as unreadable text."""

        def one(i: int) -> AnswerForm:
            status, value = self.pool.call("answer_form", answers[i], timeout=self.timeout)
            if status == OK and isinstance(value, AnswerForm):
                return value
            return AnswerForm(str(answers[i])[:200], FORM_TEXT, False)

        return self._map(one, len(answers), on_result)

    async def averify(self, response: str, ground_truth: object, **kwargs) -> Verdict:
        """:meth:`verify` for asyncio code: runs in the loop's default executor."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(None, lambda: self.verify(response, ground_truth, **kwargs))

    def close(self) -> None:
        self.pool.close()

    def __enter__(self) -> Verifier:
        self.pool.start()
        return self

    def __exit__(self, *exc) -> None:
        self.close()


_shared: dict[tuple, Verifier] = {}
_shared_lock = threading.Lock()


def get_verifier(
    workers: int | None = None, timeout: float = DEFAULT_TIMEOUT, memory_mb: int = DEFAULT_MEMORY_MB
) -> Verifier:
    """The process-wide verifier for these settings, created on first use."""
    workers = workers or int(os.environ.get("REWARDS_WORKERS", 0)) or os.cpu_count() or 1
    key = (workers, float(timeout), memory_mb)
    with _shared_lock:
        v = _shared.get(key)
        if v is None:
            v = _shared[key] = Verifier(workers=workers, timeout=timeout, memory_mb=memory_mb)
        return v


def close_shared_verifiers() -> None:
    """Stop the worker pools :func:`get_verifier` created (they also stop at exit)."""
    with _shared_lock:
        shared = list(_shared.values())
        _shared.clear()
    for v in shared:
        v.close()


def verify(
    response: str, ground_truth: object, *, mode: str = STRICT, timeout: float = DEFAULT_TIMEOUT, **kwargs
) -> Verdict:
    """Check one response with the shared verifier (see :class:`Verifier.verify`)."""
    return get_verifier(timeout=timeout).verify(response, ground_truth, mode=mode, **kwargs)


def verify_batch(
    responses: Sequence[str],
    ground_truths: Sequence[object],
    *,
    mode: str = STRICT,
    workers: int | None = None,
    timeout: float = DEFAULT_TIMEOUT,
    **kwargs,
) -> list[Verdict]:
    """Check a batch on ``workers`` processes (default: one per core)."""
    return get_verifier(workers=workers, timeout=timeout).verify_batch(responses, ground_truths, mode=mode, **kwargs)


async def averify(
    response: str, ground_truth: object, *, mode: str = STRICT, timeout: float = DEFAULT_TIMEOUT, **kwargs
) -> Verdict:
    """Check one response from asyncio code without blocking the event loop."""
    return await get_verifier(timeout=timeout).averify(response, ground_truth, mode=mode, **kwargs)
