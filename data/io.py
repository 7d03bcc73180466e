"""File I/O every stage shares: JSONL that reports bad lines, atomic writes.

* :func:`read_jsonl` yields ``(line_number, row)`` and reports malformed lines to a
  callback with their line number instead of raising, so one bad line never
  loses the rest of a file.
* :func:`atomic_writer` / :func:`write_json` / :func:`write_jsonl` write to a temporary file in the
  target's directory and ``os.replace`` it into place: readers see the old file
  or the new one, never half of one, and a crash leaves no partial output.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path


class InputError(Exception):
    """A user-facing problem with an input file (shown without a traceback)."""


def read_jsonl(
    path: str | os.PathLike, on_error: Callable[[int, str], None] | None = None
) -> Iterator[tuple[int, dict]]:
    """Yield ``(line_number, row)`` for every JSON object line of ``path``.

    Blank lines are skipped. A line that is not a JSON object is passed to
    ``on_error(line_number, message)`` and skipped; without ``on_error`` it
    raises :class:`InputError` naming the file and line.
    """
    p = Path(path)
    if not p.is_file():
        raise InputError(f"{p}: no such file")
    with p.open("r", encoding="utf-8", errors="replace") as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
                if not isinstance(row, dict):
                    raise ValueError(f"expected a JSON object, got {type(row).__name__}")
            except ValueError as e:
                msg = f"{p}:{n}: malformed line ({e})"
                if on_error is None:
                    raise InputError(msg) from None
                on_error(n, msg)
                continue
            yield n, row


@contextlib.contextmanager
def atomic_writer(path: str | os.PathLike, mode: str = "w", encoding: str | None = "utf-8"):
    """Open a temporary file next to ``path``; on success move it into place."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        with os.fdopen(fd, mode, encoding=encoding if "b" not in mode else None) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def write_jsonl(path: str | os.PathLike, rows: Iterable[dict], ensure_ascii: bool = False) -> None:
    """Write one JSON object per line, atomically."""
    with atomic_writer(path) as f:
        for r in rows:
            f.write(json.dumps(r, ensure_ascii=ensure_ascii) + "\n")


def write_json(path: str | os.PathLike, obj: object) -> None:
    """Write ``obj`` as pretty JSON, atomically."""
    with atomic_writer(path) as f:
        json.dump(obj, f, indent=2, sort_keys=False, default=str)
        f.write("\n")
