"""Run untrusted checks in worker processes with hard time and memory bounds.

Why processes: sympy can hang or eat memory on hostile input (``10^{10^{10}}``), and
the usual fix, ``signal.alarm``, only works in the main thread, so it fails inside
thread pools, asyncio executors and Ray actors (verl lost every MATH reward to
exactly that). Here each check is sent to a worker over a pipe; the caller waits on
the pipe with a timeout and, if it expires, SIGKILLs the worker and starts a
replacement in the background. The caller never sees an exception, and a check
never runs past its timeout. The timeout bounds the check, not the queue: when
every worker is busy (or being replaced, ~0.7 s) a call waits for one first.

Workers are plain ``rewards.worker`` subprocesses, not
``multiprocessing`` children: those re-import the parent's ``__main__`` (a user
script without a main guard, or Ray's own worker script) and forking a threaded
parent is unsafe. Each worker caps its address space with ``RLIMIT_AS``: a runaway
allocation raises ``MemoryError`` inside the worker (reported as an error) instead
of taking the machine down.

:class:`WorkerPool` is thread-safe; use it from any number of threads.
"""

from __future__ import annotations

import atexit
import os
import queue
import subprocess
import sys
import threading
import weakref
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import Any

from rewards.worker import ERROR, OK  # noqa: F401 - the statuses a worker sends back (OK re-exported)

TIMEOUT = "timeout"
# A worker that has not said "ready" within this many seconds is given up on.
STARTUP_TIMEOUT = 60.0

_live_pools: weakref.WeakSet[WorkerPool] = weakref.WeakSet()


@dataclass(eq=False)
class _Worker:
    process: subprocess.Popen
    inbox: Connection  # we write
    outbox: Connection  # we read

    def kill(self) -> None:
        try:
            self.process.kill()
        except Exception:
            pass
        for c in (self.inbox, self.outbox):
            try:
                c.close()
            except Exception:
                pass


class WorkerPool:
    """A fixed-size pool of killable worker processes running ``task``.

    ``task`` is ``"module:function"``; the function must be importable in a fresh
    process. ``call`` returns ``(status, value)`` with status ``ok`` / ``timeout`` /
    ``error``; it never raises for anything the task or its input does.
    """

    def __init__(
        self,
        task: str,
        workers: int | None = None,
        timeout: float = 5.0,
        memory_mb: int | None = 2048,
    ):
        if timeout <= 0:
            raise ValueError("timeout must be positive")
        self.task = task
        self.size = max(1, workers or os.cpu_count() or 1)
        self.timeout = float(timeout)
        self.memory_mb = int(memory_mb or 0)
        self._idle: queue.Queue[_Worker] = queue.Queue()
        self._all: set[_Worker] = set()
        self._lock = threading.Lock()
        self._pending = 0  # replacements being started
        self._started = False
        self._closed = False
        self._starting: set[_Worker] = set()  # spawned, not yet ready
        self.replaced = 0  # workers killed and replaced (timeouts, crashes)
        _live_pools.add(self)

    # ------------------------------------------------------------------ lifecycle
    def _spawn(self) -> _Worker:
        env = dict(os.environ)
        # The worker must import this package the way the parent did.
        env["PYTHONPATH"] = os.pathsep.join(p for p in [*sys.path, env.get("PYTHONPATH", "")] if p)
        proc = subprocess.Popen(
            # not ``-m rewards.worker``: the package imports that module first, and runpy warns
            # -P: the working directory is not put on the path, so a user's rewards.py there cannot shadow us
            [
                sys.executable,
                "-P",
                "-c",
                "import sys; from rewards.worker import main; sys.exit(main(sys.argv[1:]))",
                self.task,
                str(self.memory_mb),
            ],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            env=env,
            close_fds=True,
            start_new_session=True,  # a Ctrl-C to the caller's group does not kill workers mid-check
        )
        inbox = Connection(os.dup(proc.stdin.fileno()), readable=False)
        outbox = Connection(os.dup(proc.stdout.fileno()), writable=False)
        proc.stdin.close()
        proc.stdout.close()
        w = _Worker(proc, inbox, outbox)
        with self._lock:
            self._starting.add(w)  # close() kills it if it comes while the worker boots
        try:
            if not outbox.poll(STARTUP_TIMEOUT) or outbox.recv()[0] != "ready":
                raise RuntimeError("worker did not start")
        except Exception as e:
            w.kill()
            raise RuntimeError(f"sandbox worker for {self.task} failed to start: {e}") from e
        finally:
            with self._lock:
                self._starting.discard(w)
        with self._lock:
            if not self._closed:
                self._all.add(w)
                return w
        w.kill()
        raise RuntimeError("pool closed while its worker started")

    def start(self, wait: bool = True) -> WorkerPool:
        """Start the workers (once). ``wait=False`` returns at once and lets them boot in
        the background: a caller whose checks mostly take the in-process fast path does
        not wait for them, and the first call that needs one waits for it."""
        with self._lock:
            if self._started:
                return self
            self._started = True
            self._pending += self.size
        errors: list[Exception] = []

        def one() -> None:
            try:
                self._idle.put(self._spawn())
            except Exception as e:
                errors.append(e)
            finally:
                with self._lock:
                    self._pending -= 1

        threads = [threading.Thread(target=one, daemon=True, name="sandbox-start") for _ in range(self.size)]
        for t in threads:
            t.start()
        if not wait:
            return self  # a spawn that fails here is retried by _acquire
        for t in threads:
            t.join()
        if len(errors) == self.size:
            raise errors[0]
        return self

    def _retire(self, w: _Worker) -> None:
        """Kill ``w`` now; start its replacement in the background."""
        with self._lock:
            self._all.discard(w)
            self.replaced += 1
        w.kill()
        with self._lock:
            self._pending += 1

        def replace() -> None:
            try:
                if not self._closed:
                    self._idle.put(self._spawn())
            except Exception:
                pass  # _acquire notices the missing worker and starts one itself
            finally:
                with self._lock:
                    self._pending -= 1
            try:
                w.process.wait(timeout=5)
            except Exception:
                pass

        threading.Thread(target=replace, daemon=True, name="sandbox-replace").start()

    def close(self) -> None:
        with self._lock:
            self._closed = True
            workers = list(self._all)
            self._all.clear()
            booting = list(self._starting)
        for w in booting:
            w.kill()
        for w in workers:
            try:
                w.inbox.send(None)
            except Exception:
                pass
        for w in workers:
            try:
                w.process.wait(timeout=0.5)
            except Exception:
                pass
            w.kill()

    def __enter__(self) -> WorkerPool:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.close()

    @property
    def pids(self) -> list[int]:
        with self._lock:
            return [w.process.pid for w in self._all]

    # ------------------------------------------------------------------ calls
    def _acquire(self) -> _Worker:
        """An idle worker; starts one if the pool lost a worker it could not replace."""
        while True:
            try:
                return self._idle.get(timeout=1.0)
            except queue.Empty:
                with self._lock:
                    missing = self.size - len(self._all) - self._pending
                if missing > 0:
                    self._idle.put(self._spawn())

    def call(self, *args, timeout: float | None = None, **kwargs) -> tuple[str, Any]:
        """Run ``task(*args, **kwargs)`` in a worker, bounded by ``timeout`` seconds."""
        if self._closed:
            return ERROR, "pool closed"
        self.start()
        limit = self.timeout if timeout is None else float(timeout)
        w = self._acquire()
        try:
            w.inbox.send((args, kwargs))
        except (OSError, EOFError, BrokenPipeError):
            self._retire(w)
            return ERROR, "worker unavailable"
        except Exception as e:  # arguments not picklable: the worker is untouched
            self._idle.put(w)
            return ERROR, f"bad arguments: {type(e).__name__}"
        try:
            ready = w.outbox.poll(limit)
        except (OSError, EOFError):
            ready = False
        if not ready:
            alive = w.process.poll() is None
            self._retire(w)
            return (TIMEOUT, None) if alive else (ERROR, "worker died")
        try:
            status, value = w.outbox.recv()
        except (EOFError, OSError, BrokenPipeError):
            self._retire(w)
            return ERROR, "worker died"
        except Exception as e:
            self._retire(w)
            return ERROR, f"unreadable result: {type(e).__name__}"
        self._idle.put(w)
        return status, value


@atexit.register
def _close_all() -> None:
    for pool in list(_live_pools):
        try:
            pool.close()
        except Exception:
            pass
