"""Entry point of a sandbox worker process: ``python -m rewards.worker TASK MEMORY_MB``.

Reads ``(args, kwargs)`` messages on stdin, answers ``(status, value)`` on a private
copy of stdout (fd 1 itself is pointed at stderr so that stray prints from any
library cannot corrupt the channel). ``None`` or end of input stops it.
"""

from __future__ import annotations

import importlib
import os
import resource
import sys
from multiprocessing.connection import Connection

OK = "ok"
ERROR = "error"


def main(argv: list[str]) -> int:
    task, memory_mb = argv[0], int(argv[1])
    out_fd = os.dup(1)
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    if memory_mb > 0:
        limit = memory_mb * 1024 * 1024
        try:
            resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
        except (ValueError, OSError):
            pass
    module, _, name = task.partition(":")
    mod = importlib.import_module(module)
    fn = getattr(mod, name)
    warm_up = getattr(mod, "warm_up", None)  # optional: pay import costs before "ready"
    if callable(warm_up):
        warm_up()
    inbox = Connection(os.dup(0), writable=False)
    outbox = Connection(out_fd, readable=False)
    try:
        outbox.send(("ready", os.getpid()))
    except (BrokenPipeError, OSError):  # the pool closed while this worker booted
        return 0
    while True:
        try:
            msg = inbox.recv()
        except (EOFError, OSError, KeyboardInterrupt):
            return 0
        if msg is None:
            return 0
        args, kwargs = msg
        try:
            result = (OK, fn(*args, **kwargs))
        except MemoryError:
            result = (ERROR, "MemoryError")
        except BaseException as e:  # noqa: BLE001 - report, never die on task errors
            result = (ERROR, f"{type(e).__name__}: {str(e)[:200]}")
        try:
            outbox.send(result)
        except Exception as e:  # result not picklable
            outbox.send((ERROR, f"unpicklable result: {type(e).__name__}"))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
