"""``rl-verifier``: the verifier as a command-line tool and as a service.

    rl-verifier verify --input in.jsonl --output out.jsonl \\
        --response-key response --answer-key ground_truth
    rl-verifier serve --host 127.0.0.1 --port 8000
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections import Counter

from data.io import InputError, atomic_writer, read_jsonl
from rewards.check import REASONS
from rewards.extract import LAST, MODES, MULTI_BOX_MODES, STRICT
from rewards.verifier import DEFAULT_MEMORY_MB, DEFAULT_TIMEOUT


def _positive_float(s: str) -> float:
    v = float(s)
    if v <= 0:
        raise argparse.ArgumentTypeError("must be > 0")
    return v


def _positive_int(s: str) -> int:
    v = int(s)
    if v < 1:
        raise argparse.ArgumentTypeError("must be >= 1")
    return v


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="rl-verifier",
        description="Math answer verifier: check model responses against reference answers.",
    )
    sub = p.add_subparsers(dest="command", required=True)

    v = sub.add_parser(
        "verify",
        help="verify a JSONL file of responses",
        description=(
            "Read JSONL rows, verify each row's response(s) against its reference answer, "
            "write the rows back with `correct`, `extracted` and `reason` added (lists when the "
            "response field is a list). Malformed lines are reported with their line number and "
            "skipped. A summary goes to stderr. The output is written atomically. Exit status: 0 when "
            "checks ran; 1 when every line was malformed or no check could run (all timed out or "
            "failed); 2 for a bad argument or an unreadable file."
        ),
    )
    v.add_argument("--input", "-i", required=True, help="input JSONL file")
    v.add_argument("--output", "-o", required=True, help="output JSONL file (written atomically)")
    v.add_argument(
        "--response-key",
        default="response",
        help="field holding the response: a string or a list of strings (default: response)",
    )
    v.add_argument(
        "--answer-key",
        default="ground_truth",
        help="field holding the reference answer (default: ground_truth, as verl and the service name it)",
    )
    v.add_argument(
        "--question-key",
        default=None,
        help="optional field with the question (responses that only repeat it earn nothing)",
    )
    v.add_argument(
        "--options-key", default=None, help="optional field with multiple-choice options: {letter: text} or a list"
    )
    v.add_argument(
        "--mode",
        choices=MODES,
        default=STRICT,
        help="strict: only \\boxed{} answers count (RL default); lenient: also 'final answer is', ####, Answer:, last number",
    )
    v.add_argument(
        "--multi-box",
        choices=MULTI_BOX_MODES,
        default=LAST,
        help="several boxed answers: last = the last one committed to (after </think>; boxes together "
        "in one sentence or final list are one answer, a hedge if they differ); all_agree = every "
        "box must match (default: last)",
    )
    v.add_argument(
        "--workers",
        type=_positive_int,
        default=os.cpu_count() or 1,
        help="sandboxed worker processes (default: all cores)",
    )
    v.add_argument(
        "--timeout",
        type=_positive_float,
        default=DEFAULT_TIMEOUT,
        help=f"seconds per check before the worker is killed (default: {DEFAULT_TIMEOUT})",
    )
    v.add_argument(
        "--memory-mb",
        type=_positive_int,
        default=DEFAULT_MEMORY_MB,
        help=f"address-space limit per worker in MiB (default: {DEFAULT_MEMORY_MB})",
    )
    v.add_argument(
        "--no-progress",
        action="store_true",
        help="no progress bar (there is none anyway when stderr is not a terminal)",
    )

    s = sub.add_parser(
        "serve",
        help="run the verifier as an HTTP service",
        description="Serve POST /verify (batched) and GET /health. See rewards/service.py for the request format.",
    )
    s.add_argument("--host", default="127.0.0.1", help="interface to bind (default: 127.0.0.1)")
    s.add_argument("--port", type=int, default=8000, help="port (default: 8000)")
    s.add_argument(
        "--workers",
        type=_positive_int,
        default=os.cpu_count() or 1,
        help="sandboxed worker processes (default: all cores)",
    )
    s.add_argument("--timeout", type=_positive_float, default=DEFAULT_TIMEOUT, help="seconds per check")
    s.add_argument("--max-items", type=_positive_int, default=4096, help="most items in one request (default: 4096)")
    s.add_argument(
        "--max-body-mb", type=_positive_float, default=32.0, help="largest request body in MiB (default: 32)"
    )
    s.add_argument(
        "--max-concurrency", type=_positive_int, default=8, help="requests verified at once; more get 429 (default: 8)"
    )
    return p


def _options_of(row: dict, key: str | None) -> dict | None:
    if not key or key not in row:
        return None
    opts = row[key]
    if isinstance(opts, dict):
        return {str(k): str(v) for k, v in opts.items()}
    if isinstance(opts, list):
        return {chr(ord("A") + i): str(o) for i, o in enumerate(opts)}
    return None


def cmd_verify(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from rewards.verifier import Verifier

    problems: list[str] = []
    missing_keys: Counter = Counter()
    seen_keys: Counter = Counter()

    def bad_line(n: int, msg: str) -> None:
        problems.append(msg)

    rows: list[dict] = []
    slices: list[tuple[int, int, bool]] = []  # (start, count, is_list) per kept row
    responses: list[str] = []
    golds: list[object] = []
    questions: list[str | None] = []
    options: list[dict | None] = []
    for n, row in read_jsonl(args.input, on_error=bad_line):
        missing = [k for k in (args.response_key, args.answer_key) if k not in row]
        resp = row.get(args.response_key)
        missing_keys.update(missing)
        seen_keys.update(list(row))
        if missing:
            bad_line(n, f"{args.input}:{n}: missing field(s) {', '.join(map(repr, missing))}; skipped")
            continue
        is_list = isinstance(resp, list)
        items = resp if is_list else [resp]
        if not all(isinstance(x, str) for x in items):
            bad_line(n, f"{args.input}:{n}: {args.response_key!r} must be a string or a list of strings; skipped")
            continue
        slices.append((len(responses), len(items), is_list))
        rows.append(row)
        q = row.get(args.question_key) if args.question_key else None
        o = _options_of(row, args.options_key)
        for x in items:
            responses.append(x)
            golds.append(row[args.answer_key])
            questions.append(q if isinstance(q, str) else None)
            options.append(o)

    if not rows:
        print(_nothing_to_check(args, problems, missing_keys, seen_keys), file=sys.stderr)
        return 1
    for msg in problems[:MAX_LINE_MESSAGES]:
        print(msg, file=sys.stderr)

    verifier = Verifier(workers=args.workers, timeout=args.timeout, memory_mb=args.memory_mb, multi_box=args.multi_box)
    try:
        # the workers boot while the fast path decides what needs no parser
        verifier.pool.start(wait=False)
        t0 = time.perf_counter()
        quiet = args.no_progress or not sys.stderr.isatty()
        with tqdm(total=len(responses), desc="verify", unit="check", disable=quiet, file=sys.stderr) as bar:
            verdicts = verifier.verify_batch(
                responses,
                golds,
                mode=args.mode,
                questions=questions,
                options=options,
                on_result=lambda i, v: bar.update(1),
            )
        elapsed = time.perf_counter() - t0
    finally:
        verifier.close()

    with atomic_writer(args.output) as f:
        for row, (start, count, is_list) in zip(rows, slices):
            vs = verdicts[start : start + count]
            out = dict(row)
            if is_list:
                out["correct"] = [v.correct for v in vs]
                out["extracted"] = [v.extracted for v in vs]
                out["reason"] = [v.reason for v in vs]
            else:
                out["correct"], out["extracted"], out["reason"] = vs[0].correct, vs[0].extracted, vs[0].reason
            f.write(json.dumps(out, ensure_ascii=False) + "\n")

    counts = Counter(v.reason for v in verdicts)
    n = len(verdicts)
    correct = counts.get("match", 0)
    print(
        f"verified {n} responses from {len(rows)} rows in {elapsed:.2f}s "
        f"({n / elapsed if elapsed > 0 else 0:.0f} checks/s, {args.workers} workers); "
        f"correct {correct}/{n} ({100 * correct / n if n else 0:.1f}%)",
        file=sys.stderr,
    )
    print("by reason: " + ", ".join(f"{r}={counts[r]}" for r in REASONS if counts.get(r)), file=sys.stderr)
    if problems:
        more = (
            f" (the first {MAX_LINE_MESSAGES} above)" if len(problems) > MAX_LINE_MESSAGES else "; see messages above"
        )
        print(f"skipped {len(problems)} malformed line(s){more}", file=sys.stderr)
    print(f"wrote {args.output}", file=sys.stderr)
    failed = counts.get("timeout", 0) + counts.get("error", 0)
    if n == 0 or failed == n:
        print(
            f"error: none of the {n} response(s) could be verified: every check "
            f"{'timed out or failed' if n else 'was empty'} (try a larger --timeout or --memory-mb)",
            file=sys.stderr,
        )
        return 1
    return 0


# Malformed lines reported one by one before the rest are only counted.
MAX_LINE_MESSAGES = 10


def _nothing_to_check(args: argparse.Namespace, problems: list[str], missing: Counter, seen: Counter) -> str:
    """The one line that says why a run found no row to check."""
    bad = len(problems)
    if bad == 0:
        return f"error: {args.input} holds no rows; nothing to verify"
    why = f"error: all {bad} line(s) of {args.input} were malformed; nothing was verified"
    for key, flag in ((args.answer_key, "--answer-key"), (args.response_key, "--response-key")):
        if missing.get(key) == bad:
            others = [k for k, _ in seen.most_common() if k not in (args.answer_key, args.response_key)][:6]
            hint = f"; fields present: {', '.join(others)}" if others else ""
            return f"{why}: no row has the field {key!r} (set {flag}{hint})"
    return f"{why} (first: {problems[0]})"


def cmd_serve(args: argparse.Namespace) -> int:
    from rewards.service import serve

    serve(
        host=args.host,
        port=args.port,
        workers=args.workers,
        timeout=args.timeout,
        max_items=args.max_items,
        max_body_bytes=int(args.max_body_mb * 1024 * 1024),
        max_concurrency=args.max_concurrency,
    )
    return 0


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return {"verify": cmd_verify, "serve": cmd_serve}[args.command](args)
    except InputError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
