#!/usr/bin/env python
"""Benchmark the answer verifier (``rewards``) against math-verify on labelled data.

    .venv/bin/python benchmarks/verifier.py [--data PATH] [--out DIR]

One run measures, side by side:

a) agreement with the reference grader's labels (the ``score`` field) for our
   verifier (strict mode) and for math-verify used the way verl does it,
   ``verify(parse("\\boxed{" + gt + "}"), parse(response))`` (the headline baseline),
   plus the ``parse("$" + gt + "$")`` variant used by TRL / open-r1; as a
   secondary check, the same pairs graded against the ``answer`` field (the raw
   MATH formatting of the reference: ``3,\\!250``, ``25\\%``);
b) every pair where ours or math-verify (verl style) disagrees with the label,
   written to ``OUT/verifier_disagreements.jsonl`` for adjudication by hand;
c) throughput (checks/s) with 1 and 2 workers, cold (a fresh ``Verifier``, whose
   workers' parse cache is empty) and warm (the same 800 pairs again), per-call
   latency in the caller for 1 worker, and math-verify's single-core throughput
   and latency in the same run;
d) hostile inputs, each on a ``Verifier(timeout=2.0)``: elapsed time, verdict,
   flagged when slower than timeout + 1 s or when it comes back correct; plus
   three short answers that do run into the timeout (reported apart).

Figures go to ``OUT/verifier_benchmark.json``; the last line printed is a one-line
headline, whose throughput figures are the cold ``verify_batch`` medians (math-verify
keeps no result cache, so cold is the fair comparison) and whose latencies are the
cold 1-worker ``v.verify`` loop.

Default data: ``<repo>/../shared/data/bon/math_cot_100.jsonl``; default OUT:
``<repo>/runs/bench``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import statistics
import sys
import time
from collections import Counter
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
DEFAULT_DATA = (REPO / ".." / "shared" / "data" / "bon" / "math_cot_100.jsonl").resolve()
DEFAULT_OUT = REPO / "runs" / "bench"

# Import the package from this checkout, and keep benchmarks/ (which holds a
# module named ``verifier``) off the path the sandbox workers inherit.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != HERE]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from tqdm import tqdm  # noqa: E402

from rewards import Verdict, Verifier  # noqa: E402

REPEATS = 5  # cold passes (each on a fresh Verifier) and warm passes per configuration
OUR_TIMEOUT = 5.0
HOSTILE_TIMEOUT = 2.0
HOSTILE_SLACK = 1.0


# --------------------------------------------------------------------------- data


def load_pairs(path: Path) -> list[dict]:
    """One dict per (response, gt, label) pair, in file order."""
    pairs: list[dict] = []
    with path.open(encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            row = json.loads(line)
            missing = [k for k in ("question", "gt", "answer", "response", "score") if k not in row]
            if missing:
                raise SystemExit(f"error: {path}:{lineno}: missing field(s) {missing}")
            if len(row["response"]) != len(row["score"]):
                raise SystemExit(
                    f"error: {path}:{lineno}: {len(row['response'])} responses but {len(row['score'])} scores"
                )
            for k, (resp, label) in enumerate(zip(row["response"], row["score"])):
                pairs.append(
                    {
                        "index": len(pairs),
                        "row": row.get("idx", lineno - 1),
                        "k": k,
                        "question": row["question"],
                        "gt": str(row["gt"]),
                        "answer": str(row["answer"]),
                        "response": resp if isinstance(resp, str) else str(resp),
                        "label": bool(label),
                    }
                )
    return pairs


# --------------------------------------------------------------------------- stats


def pct(values: list[float], q: float) -> float:
    """The q-th percentile (0..100), linear interpolation between order statistics."""
    if not values:
        return float("nan")
    s = sorted(values)
    pos = (len(s) - 1) * q / 100.0
    lo = int(pos)
    hi = min(lo + 1, len(s) - 1)
    return s[lo] + (s[hi] - s[lo]) * (pos - lo)


def latency_stats(ms: list[float]) -> dict:
    return {
        "n": len(ms),
        "p50_ms": round(pct(ms, 50), 3),
        "p90_ms": round(pct(ms, 90), 3),
        "p99_ms": round(pct(ms, 99), 3),
        "max_ms": round(max(ms), 3) if ms else None,
        "mean_ms": round(statistics.fmean(ms), 3) if ms else None,
    }


def confusion(pred: list[bool], label: list[bool]) -> dict:
    c = Counter((bool(p), bool(y)) for p, y in zip(pred, label))
    return {
        "agree": c[(True, True)] + c[(False, False)],
        "n": len(label),
        "true_pos": c[(True, True)],  # says correct, label correct
        "false_pos": c[(True, False)],  # says correct, label wrong
        "false_neg": c[(False, True)],  # says wrong, label correct
        "true_neg": c[(False, False)],
    }


def rate(n: int, seconds: float) -> float:
    return n / seconds if seconds > 0 else float("inf")


# --------------------------------------------------------------------------- math-verify


def mathverify_fns():
    from math_verify import parse, verify

    def verl_style(response: str, gt: str) -> bool:
        return bool(verify(parse("\\boxed{" + gt + "}"), parse(response)))

    def dollar_style(response: str, gt: str) -> bool:
        return bool(verify(parse("$" + gt + "$"), parse(response)))

    return verl_style, dollar_style


def run_mathverify(fn, pairs: list[dict], desc: str) -> tuple[list[bool], list[float], float, int]:
    """In-process, main thread, math-verify's default (signal) timeouts.

    Returns (results, per-call ms, wall seconds, errors)."""
    out: list[bool] = []
    ms: list[float] = []
    errors = 0
    t0 = time.perf_counter()
    for p in tqdm(pairs, desc=desc, unit="chk", leave=False, mininterval=0.5, disable=None):
        t = time.perf_counter()
        try:
            ok = fn(p["response"], p["gt"])
        except Exception:  # math-verify should not raise with raise_on_error=False; count it if it does
            ok, errors = False, errors + 1
        ms.append((time.perf_counter() - t) * 1000)
        out.append(ok)
    return out, ms, time.perf_counter() - t0, errors


# --------------------------------------------------------------------------- ours


def ours_loop(
    v: Verifier, pairs: list[dict], desc: str, gold: str = "gt"
) -> tuple[list[Verdict], list[float], float, float]:
    """``v.verify`` one call at a time; per-call wall time measured here, in the caller.

    Returns (verdicts, per-call ms, wall seconds, caller CPU seconds)."""
    out: list[Verdict] = []
    ms: list[float] = []
    c0, t0 = time.process_time(), time.perf_counter()
    for p in tqdm(pairs, desc=desc, unit="chk", leave=False, mininterval=0.5, disable=None):
        t = time.perf_counter()
        out.append(v.verify(p["response"], p[gold], mode="strict"))
        ms.append((time.perf_counter() - t) * 1000)
    return out, ms, time.perf_counter() - t0, time.process_time() - c0


def ours_batch(v: Verifier, pairs: list[dict], desc: str, gold: str = "gt") -> tuple[list[Verdict], float, float]:
    """``v.verify_batch`` over all pairs. Returns (verdicts, wall seconds, caller CPU seconds)."""
    responses = [p["response"] for p in pairs]
    gts = [p[gold] for p in pairs]
    with tqdm(total=len(pairs), desc=desc, unit="chk", leave=False, mininterval=0.5, disable=None) as bar:
        c0, t0 = time.process_time(), time.perf_counter()
        out = v.verify_batch(responses, gts, mode="strict", on_result=lambda i, d: bar.update(1))
        wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    return out, wall, cpu


def fresh_verifier(workers: int, timeout: float = OUR_TIMEOUT) -> tuple[Verifier, float]:
    v = Verifier(workers=workers, timeout=timeout)
    t0 = time.perf_counter()
    v.pool.start()
    return v, time.perf_counter() - t0


def bench_common_case(pairs: list[dict], mv_fn) -> dict:
    """The common case: the pairs our fast path decides without the parser (integers,
    decimals, fractions, letters, ...). Ours (a fresh 1-worker Verifier, ``v.verify``
    loop) and math-verify on exactly those pairs, median of REPEATS passes each."""
    from rewards.check import check

    subset = [p for p in pairs if check(p["response"], p["gt"], fast_only=True) is not None]
    ours_rates, mv_rates, ours_ms = [], [], []
    for r in range(REPEATS):
        v, _ = fresh_verifier(1)
        with v:
            _, ms, wall, _ = ours_loop(v, subset, f"common case: ours {r + 1}/{REPEATS}")
        ours_rates.append(rate(len(subset), wall))
        ours_ms.extend(ms)
        mv_rates.append(
            rate(len(subset), run_mathverify(mv_fn, subset, f"common case: math-verify {r + 1}/{REPEATS}")[2])
        )
    ours_rate, mv_rate = statistics.median(ours_rates), statistics.median(mv_rates)
    return {
        "subset": subset,
        "pairs": len(subset),
        "of": len(pairs),
        "ours_checks_per_s": round(ours_rate, 1),
        "mathverify_checks_per_s": round(mv_rate, 1),
        "ratio": round(ours_rate / mv_rate, 2),
        "ours_latency": latency_stats(ours_ms),
    }


def bench_cli(pairs: list[dict], out_dir: Path, name: str = "cli") -> dict:
    """JSONL in and out: ``rl-verifier verify --workers 1`` on the pairs, as a user
    runs it; checks/s from its own summary line (the verify phase, start-up apart) and
    the whole command's wall time."""
    import re
    import subprocess

    src, dst = out_dir / f"{name}_in.jsonl", out_dir / f"{name}_out.jsonl"
    with src.open("w", encoding="utf-8") as f:
        for p in pairs:
            f.write(json.dumps({"response": p["response"], "ground_truth": p["gt"]}) + "\n")
    rates, walls = [], []
    for _ in range(3):
        t0 = time.perf_counter()
        r = subprocess.run(
            [sys.executable, "-m", "rewards", "verify", "-i", str(src), "-o", str(dst), "--workers", "1"],
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=600,
        )
        walls.append(time.perf_counter() - t0)
        m = re.search(r"\(([\d.]+) checks/s", r.stderr)
        if r.returncode != 0 or m is None:
            return {"error": r.stderr[-500:]}
        rates.append(float(m.group(1)))
    return {"pairs": len(pairs), "checks_per_s": statistics.median(rates), "wall_s": round(statistics.median(walls), 2)}


def bench_ours(pairs: list[dict]) -> tuple[dict, list[Verdict], int]:
    """All throughput / latency figures for our verifier.

    Returns (figures, verdicts of the first pass, number of later passes whose
    verdicts differ from the first)."""
    n = len(pairs)
    ref: list[Verdict] | None = None
    inconsistent = 0
    fig: dict = {"startup_s": {}}

    def keep(verdicts: list[Verdict]) -> None:
        nonlocal ref, inconsistent
        if ref is None:
            ref = verdicts
        elif [d.correct for d in verdicts] != [d.correct for d in ref]:
            inconsistent += 1

    def summarize(walls: list[float], cpus: list[float]) -> dict:
        rates = [rate(n, w) for w in walls]
        return {
            "passes": len(walls),
            "checks_per_pass": n,
            "wall_s": [round(w, 4) for w in walls],
            "checks_per_s": round(statistics.median(rates), 1),
            "checks_per_s_each": [round(r, 1) for r in rates],
            # CPU the calling process itself burns (pickling, pipes, threads), in cores.
            "caller_cpu_cores": round(statistics.median(c / w for c, w in zip(cpus, walls)), 2),
        }

    # 1 worker, v.verify in a loop: cold (a fresh Verifier per pass), then warm passes.
    walls, cpus, cold_ms, starts = [], [], [], []
    v = None
    for rep in range(REPEATS):
        if v is not None:
            v.close()
        v, s = fresh_verifier(1)
        starts.append(s)
        verdicts, ms, wall, cpu = ours_loop(v, pairs, f"ours 1w loop cold {rep + 1}/{REPEATS}")
        keep(verdicts)
        walls.append(wall)
        cpus.append(cpu)
        cold_ms += ms
    fig["loop_1w_cold"] = {**summarize(walls, cpus), "latency": latency_stats(cold_ms)}
    walls, cpus, warm_ms = [], [], []
    for rep in range(REPEATS):
        verdicts, ms, wall, cpu = ours_loop(v, pairs, f"ours 1w loop warm {rep + 1}/{REPEATS}")
        keep(verdicts)
        walls.append(wall)
        cpus.append(cpu)
        warm_ms += ms
    fig["loop_1w_warm"] = {**summarize(walls, cpus), "latency": latency_stats(warm_ms)}
    v.close()
    fig["startup_s"]["loop_1w"] = [round(s, 3) for s in starts]

    # verify_batch with 1 and 2 workers: the API the training loop uses.
    for workers in (1, 2):
        walls, cpus, starts = [], [], []
        v = None
        for rep in range(REPEATS):
            if v is not None:
                v.close()
            v, s = fresh_verifier(workers)
            starts.append(s)
            verdicts, wall, cpu = ours_batch(v, pairs, f"ours {workers}w batch cold {rep + 1}/{REPEATS}")
            keep(verdicts)
            walls.append(wall)
            cpus.append(cpu)
        fig[f"batch_{workers}w_cold"] = summarize(walls, cpus)
        walls, cpus = [], []
        for rep in range(REPEATS):
            verdicts, wall, cpu = ours_batch(v, pairs, f"ours {workers}w batch warm {rep + 1}/{REPEATS}")
            keep(verdicts)
            walls.append(wall)
            cpus.append(cpu)
        fig[f"batch_{workers}w_warm"] = summarize(walls, cpus)
        fig[f"batch_{workers}w_workers_replaced"] = v.pool.replaced
        v.close()
        fig["startup_s"][f"batch_{workers}w"] = [round(s, 3) for s in starts]
    assert ref is not None
    return fig, ref, inconsistent


def grade_against_answer_field(pairs: list[dict], mv_fn) -> dict:
    """Secondary check: the same pairs graded against the ``answer`` field (the raw
    MATH formatting: ``3,\\!250``, ``25\\%``, ``\\text{4:30 p.m.}``) instead of ``gt``."""
    v, _ = fresh_verifier(2)
    try:
        ours, _, _ = ours_batch(v, pairs, "ours vs answer field", gold="answer")
    finally:
        v.close()
    mv = []
    for p in tqdm(pairs, desc="math-verify vs answer field", unit="chk", leave=False, mininterval=0.5, disable=None):
        try:
            mv.append(mv_fn(p["response"], p["answer"]))
        except Exception:
            mv.append(False)
    labels = [p["label"] for p in pairs]
    groups: dict[tuple, dict] = {}
    for p, d, m in zip(pairs, ours, mv):
        if d.correct != p["label"] or m != p["label"]:
            key = (p["row"], p["answer"], p["label"], d.correct, m)
            g = groups.setdefault(
                key,
                {
                    "row": p["row"],
                    "gt": p["gt"],
                    "answer": p["answer"],
                    "label": p["label"],
                    "ours": d.correct,
                    "ours_reason": d.reason,
                    "ours_extracted": d.extracted,
                    "mathverify": m,
                    "indices": [],
                },
            )
            g["indices"].append(p["index"])
    return {
        "ours_strict": confusion([d.correct for d in ours], labels),
        "mathverify_verl": confusion(mv, labels),
        "disagreement_groups": list(groups.values()),
    }


# --------------------------------------------------------------------------- hostile


def hostile_cases() -> list[dict]:
    """(name, response, gold). Golds are chosen so that ``correct=True`` would be a
    false positive, except ``tower_9`` whose gold (given by the brief) is the same
    string as the box."""
    return [
        {"name": "tower_10^10^10", "response": r"\boxed{10^{10^{10}}}", "gt": "10"},
        {"name": "tower_2x6", "response": r"\boxed{2^{2^{2^{2^{2^{2}}}}}}", "gt": "65536"},
        {"name": "nested_braces_100k", "response": r"\boxed{" + "{" * 100_000 + "1" + "}" * 100_000 + "}", "gt": "2"},
        {"name": "1MB_text_then_box", "response": "lorem ipsum " * (1_048_576 // 12) + r" \boxed{1}", "gt": "2"},
        {"name": "unterminated_box", "response": r"So the answer is \boxed{42", "gt": "42"},
        {"name": "nul_bytes_in_box", "response": "The answer is \\boxed{\x00\x001\x00}", "gt": "2"},
        {"name": "tower_9^9^9_vs_same_gold", "response": r"\boxed{9^{9^{9}}}", "gt": r"9^{9^{9}}"},
        {"name": "sum_50k_terms", "response": r"\boxed{" + "+".join(["1"] * 50_000) + "}", "gt": "50000"},
        {"name": "frac_1_over_0", "response": r"\boxed{\frac{1}{0}}", "gt": r"\infty"},
    ]


def hostile_extra_cases() -> list[dict]:
    """Short answers that do reach the parser and run into the timeout: the cases
    above never exercise the kill-and-respawn path. Reported apart from the 9."""
    return [
        {"name": "x_nested_parens_100", "response": r"\boxed{" + "(" * 100 + "1" + ")" * 100 + "}", "gt": "2"},
        {"name": "x_nested_braces_100", "response": r"\boxed{" + "{" * 100 + "1" + "}" * 100 + "}", "gt": "2"},
        {"name": "x_factorial_chain", "response": r"\boxed{10!!!!!!}", "gt": "1"},
    ]


def bench_hostile(cases: list[dict]) -> list[dict]:
    v, _ = fresh_verifier(1, timeout=HOSTILE_TIMEOUT)
    out = []
    try:
        for case in tqdm(cases, desc="hostile", unit="case", leave=False, disable=None):
            # Untimed probe: blocks until a worker is idle, so a replacement still
            # starting after the previous case's timeout is not charged to this case.
            t = time.perf_counter()
            v.verify(r"\boxed{1}", "1")
            ready_wait = time.perf_counter() - t
            t = time.perf_counter()
            d = v.verify(case["response"], case["gt"], mode="strict")
            elapsed = time.perf_counter() - t
            out.append(
                {
                    "name": case["name"],
                    "response_chars": len(case["response"]),
                    "response_head": case["response"][:60],
                    "gt": case["gt"],
                    "elapsed_s": round(elapsed, 4),
                    "correct": d.correct,
                    "reason": d.reason,
                    "extracted": None if d.extracted is None else d.extracted[:80],
                    "worker_ms": d.ms,
                    "pre_wait_s": round(ready_wait, 4),
                    "within_limit": elapsed <= HOSTILE_TIMEOUT + HOSTILE_SLACK,
                    "flag_slow": elapsed > HOSTILE_TIMEOUT + HOSTILE_SLACK,
                    "flag_correct": bool(d.correct),
                }
            )
        replaced = v.pool.replaced
    finally:
        v.close()
    for h in out:
        h["pool_workers_replaced_total"] = replaced
    return out


# --------------------------------------------------------------------------- report


def bench_peer_tables(out_dir: Path) -> dict:
    """e) Other graders' public test tables (``tests/fixtures/peer_cases``): agreement with
    each peer's expected verdict and false positives, ours and math-verify's, per
    source, overall and without Math-Verify's own tables."""
    from tests.peer_tables import load_cases, math_verify_verdict

    cases = load_cases()
    with Verifier(workers=1, timeout=OUR_TIMEOUT) as v:
        ours = [
            v.verify(c.response(), c.gold, mode=c.mode()) for c in tqdm(cases, desc="peer tables: ours", leave=False)
        ]
    mv = [math_verify_verdict(c) for c in tqdm(cases, desc="peer tables: math-verify", leave=False)]

    def tally(idx: list[int], label_of) -> dict:
        def side(verdicts: list[bool]) -> dict:
            agree = sum(verdicts[i] == label_of(cases[i]) for i in idx)
            fp = sum(verdicts[i] and not label_of(cases[i]) for i in idx)
            fn = sum(label_of(cases[i]) and not verdicts[i] for i in idx)
            return {
                "agree": agree,
                "false_pos": fp,
                "false_neg": fn,
                "agreement": round(agree / len(idx), 4) if idx else None,
            }

        return {
            "cases": len(idx),
            "negatives": sum(not label_of(cases[i]) for i in idx),
            "ours": side([o.correct for o in ours]),
            "mathverify": side(mv),
        }

    sources = sorted({c.source for c in cases})
    every = list(range(len(cases)))
    others = [i for i in every if cases[i].source != "math-verify"]
    peer = lambda c: c.expected  # noqa: E731
    fig = {
        "by_source": {s: tally([i for i in every if cases[i].source == s], peer) for s in sources},
        "overall": tally(every, peer),
        "without_math_verify": tally(others, peer),
        "overall_adjudicated": tally(every, lambda c: c.label),
        "adjudicated_cases": sum(c.adjudicated is not None for c in cases),
    }
    dis_path = out_dir / "peer_disagreements.jsonl"
    with dis_path.open("w", encoding="utf-8") as f:
        for c, o, m in zip(cases, ours, mv):
            if o.correct != c.expected or m != c.expected:
                f.write(
                    json.dumps(
                        {
                            "id": c.id,
                            "gold": c.gold,
                            "pred": c.pred[-400:],
                            "expected": c.expected,
                            "adjudicated": c.adjudicated,
                            "ours": o.correct,
                            "ours_reason": o.reason,
                            "ours_extracted": o.extracted,
                            "mathverify": m,
                            "note": c.note,
                        },
                        ensure_ascii=False,
                    )
                    + "\n"
                )
    fig["disagreements_path"] = str(dis_path)
    return fig


def fmt_conf(name: str, c: dict) -> str:
    return (
        f"  {name:<30} {c['agree']:>4}/{c['n']}   TP {c['true_pos']:>4}  FP {c['false_pos']:>3}  "
        f"FN {c['false_neg']:>3}  TN {c['true_neg']:>4}"
    )


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA, help=f"labelled JSONL (default: {DEFAULT_DATA})")
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"output folder (default: {DEFAULT_OUT})")
    args = ap.parse_args(argv)

    data = args.data.expanduser().resolve()
    if not data.is_file():
        print(
            f"error: benchmark data not found: {data}\n"
            f"  expected <repo>/../shared/data/bon/math_cot_100.jsonl ({DEFAULT_DATA}); pass --data PATH",
            file=sys.stderr,
        )
        return 2
    out_dir = args.out.expanduser().resolve()
    out_dir.mkdir(parents=True, exist_ok=True)

    from importlib.metadata import PackageNotFoundError, version

    import sympy

    try:
        mv_version = version("math-verify")
    except PackageNotFoundError:
        mv_version = "?"

    t_start = time.perf_counter()
    pairs = load_pairs(data)
    n = len(pairs)
    labels = [p["label"] for p in pairs]
    print(f"verifier benchmark: {n} labelled pairs from {data}", flush=True)

    # ---- math-verify: verl style (headline baseline), REPEATS timed passes.
    verl_style, dollar_style = mathverify_fns()
    mv_runs = [run_mathverify(verl_style, pairs, f"math-verify verl {r + 1}/{REPEATS}") for r in range(REPEATS)]
    mv = mv_runs[0][0]
    mv_inconsistent = sum(1 for r in mv_runs[1:] if r[0] != mv)
    mv_ms = [x for r in mv_runs for x in r[1]]
    mv_walls = [r[2] for r in mv_runs]
    mv_errors = sum(r[3] for r in mv_runs)
    mv_dollar, mv_dollar_ms, mv_dollar_wall, mv_dollar_err = run_mathverify(dollar_style, pairs, "math-verify $gt$")

    # ---- ours
    ours_fig, ours_verdicts, ours_inconsistent = bench_ours(pairs)

    # ---- secondary: grade against the answer field instead of gt
    answer_field = grade_against_answer_field(pairs, verl_style)

    # ---- the common case, and JSONL in and out through the CLI
    common = bench_common_case(pairs, verl_style)
    cli = bench_cli(pairs, out_dir)
    cli_common = bench_cli(common.pop("subset"), out_dir, "cli_common")
    if "error" not in cli_common:
        cli_common["ratio_to_mathverify"] = round(cli_common["checks_per_s"] / common["mathverify_checks_per_s"], 2)

    # ---- other graders' test tables
    peer = bench_peer_tables(out_dir)

    # ---- hostile
    hostile = bench_hostile(hostile_cases())
    hostile_extra = bench_hostile(hostile_extra_cases())
    t_total = time.perf_counter() - t_start

    ours = [d.correct for d in ours_verdicts]
    conf = {
        "ours_strict": confusion(ours, labels),
        "mathverify_verl": confusion(mv, labels),
        "mathverify_dollar": confusion(mv_dollar, labels),
    }
    ours_vs_mv = Counter((o, m) for o, m in zip(ours, mv))

    # ---- disagreements
    dis = []
    for p, d, m, md in zip(pairs, ours_verdicts, mv, mv_dollar):
        if d.correct != p["label"] or m != p["label"]:
            dis.append(
                {
                    "index": p["index"],
                    "row": p["row"],
                    "k": p["k"],
                    "question": p["question"][:300],
                    "gt": p["gt"],
                    "answer": p["answer"],
                    "label": p["label"],
                    "ours": d.correct,
                    "ours_reason": d.reason,
                    "ours_extracted": d.extracted,
                    "mathverify": m,
                    "mathverify_dollar": md,
                    "response_tail": p["response"][-400:],
                }
            )
    dis_path = out_dir / "verifier_disagreements.jsonl"
    with dis_path.open("w", encoding="utf-8") as f:
        for r in dis:
            f.write(json.dumps(r, ensure_ascii=False) + "\n")
    dollar_only = [p["index"] for p, m, md in zip(pairs, mv, mv_dollar) if md != p["label"] and m == p["label"]]

    # ---- throughput figures
    mv_rates = [rate(n, w) for w in mv_walls]
    mv_fig = {
        "passes": REPEATS,
        "wall_s": [round(w, 4) for w in mv_walls],
        "checks_per_s": round(statistics.median(mv_rates), 1),
        "checks_per_s_each": [round(r, 1) for r in mv_rates],
        "latency": latency_stats(mv_ms),
        "errors": mv_errors,
        "dollar_style": {
            "wall_s": round(mv_dollar_wall, 4),
            "checks_per_s": round(rate(n, mv_dollar_wall), 1),
            "latency": latency_stats(mv_dollar_ms),
            "errors": mv_dollar_err,
        },
    }
    one = ours_fig["batch_1w_cold"]["checks_per_s"]
    two = ours_fig["batch_2w_cold"]["checks_per_s"]
    one_warm = ours_fig["batch_1w_warm"]["checks_per_s"]
    two_warm = ours_fig["batch_2w_warm"]["checks_per_s"]
    ratios = {
        "ours_1w_cold_over_mathverify": round(one / mv_fig["checks_per_s"], 2),
        "ours_1w_warm_over_mathverify": round(one_warm / mv_fig["checks_per_s"], 2),
        "ours_1w_loop_cold_over_mathverify": round(
            ours_fig["loop_1w_cold"]["checks_per_s"] / mv_fig["checks_per_s"], 2
        ),
        "scaling_2w_over_1w_cold": round(two / one, 2),
        "scaling_2w_over_1w_warm": round(two_warm / one_warm, 2),
    }
    lat = ours_fig["loop_1w_cold"]["latency"]

    hostile_ok = sum(1 for h in hostile if h["within_limit"])
    hostile_correct = [h["name"] for h in hostile if h["flag_correct"]]
    extra_ok = sum(1 for h in hostile_extra if h["within_limit"])
    extra_correct = [h["name"] for h in hostile_extra if h["flag_correct"]]

    # ---- report
    bar = "=" * 78
    print(bar)
    print(
        f"VERIFIER BENCHMARK  {dt.datetime.now().isoformat(timespec='seconds')}  "
        f"{platform.node()}  {os.cpu_count()} CPU cores  python {platform.python_version()}"
    )
    print(f"math-verify {mv_version}  sympy {sympy.__version__}  data {data.name}  pairs {n}")
    print(bar)
    print("a) agreement with the reference labels (score field)")
    print(fmt_conf("ours (strict)", conf["ours_strict"]))
    print(fmt_conf("math-verify, verl \\boxed{gt}", conf["mathverify_verl"]))
    print(fmt_conf("math-verify, $gt$", conf["mathverify_dollar"]))
    print(
        f"  labels: {sum(labels)} correct / {n - sum(labels)} wrong;  ours vs math-verify(verl): "
        f"both T {ours_vs_mv[(True, True)]}, both F {ours_vs_mv[(False, False)]}, "
        f"ours T/mv F {ours_vs_mv[(True, False)]}, ours F/mv T {ours_vs_mv[(False, True)]}"
    )
    print(f"  our reasons: {dict(Counter(d.reason for d in ours_verdicts).most_common())}")
    af = answer_field
    print(
        f"  secondary, gold = `answer` field (raw MATH formatting): ours {af['ours_strict']['agree']}/{n}, "
        f"math-verify {af['mathverify_verl']['agree']}/{n}"
    )
    for g in af["disagreement_groups"]:
        print(
            f"    row {g['row']:>3} x{len(g['indices'])}: answer={g['answer']!r} label={g['label']} "
            f"ours={g['ours']} ({g['ours_extracted']!r}) math-verify={g['mathverify']}"
        )
    if ours_inconsistent or mv_inconsistent:
        print(f"  WARNING: verdicts changed between passes (ours {ours_inconsistent}, math-verify {mv_inconsistent})")
    print()
    print(f"b) {len(dis)} disagreement row(s) -> {dis_path}")
    for r in dis:
        print(
            f"  #{r['index']:>3} (row {r['row']}, resp {r['k']})  gt={r['gt']!r}  label={r['label']}  "
            f"ours={r['ours']} ({r['ours_reason']}, {r['ours_extracted']!r})  math-verify={r['mathverify']}"
        )
    if dollar_only:
        print(f"  (math-verify $gt$ style alone also differs from the label at {dollar_only})")
    print()
    print("c) throughput (checks/s, median of passes; cold = fresh Verifier per pass, warm = repeat on the same one)")
    print(f"  {'':34} {'cold':>9} {'warm':>9}")
    print(
        f"  {'ours 1 worker  v.verify loop':34} {ours_fig['loop_1w_cold']['checks_per_s']:>9.0f} {ours_fig['loop_1w_warm']['checks_per_s']:>9.0f}"
    )
    print(f"  {'ours 1 worker  verify_batch':34} {one:>9.0f} {one_warm:>9.0f}")
    print(f"  {'ours 2 workers verify_batch':34} {two:>9.0f} {two_warm:>9.0f}")
    print(f"  {'math-verify in-process (1 core)':34} {mv_fig['checks_per_s']:>9.0f}")
    print(
        f"  caller CPU (cores busy in this process): 1w batch {ours_fig['batch_1w_cold']['caller_cpu_cores']}, "
        f"2w batch {ours_fig['batch_2w_cold']['caller_cpu_cores']} (of {os.cpu_count()} cores)"
    )
    print(
        f"  speed ours(1w)/math-verify: {ratios['ours_1w_cold_over_mathverify']}x cold, {ratios['ours_1w_warm_over_mathverify']}x warm;"
        f"  scaling 2w/1w: {ratios['scaling_2w_over_1w_cold']}x cold, {ratios['scaling_2w_over_1w_warm']}x warm"
    )
    lw = ours_fig["loop_1w_warm"]["latency"]
    ml = mv_fig["latency"]
    print("  latency per check (ms)       p50      p90      p99      max")
    print(
        f"    ours 1w cold          {lat['p50_ms']:>8.2f} {lat['p90_ms']:>8.2f} {lat['p99_ms']:>8.2f} {lat['max_ms']:>8.1f}"
    )
    print(
        f"    ours 1w warm          {lw['p50_ms']:>8.2f} {lw['p90_ms']:>8.2f} {lw['p99_ms']:>8.2f} {lw['max_ms']:>8.1f}"
    )
    print(
        f"    math-verify (verl)    {ml['p50_ms']:>8.2f} {ml['p90_ms']:>8.2f} {ml['p99_ms']:>8.2f} {ml['max_ms']:>8.1f}"
    )
    print(
        f"  common case ({common['pairs']}/{common['of']} pairs the fast path decides): ours 1 worker "
        f"{common['ours_checks_per_s']:.0f}/s vs math-verify {common['mathverify_checks_per_s']:.0f}/s = "
        f"{common['ratio']}x; p99 {common['ours_latency']['p99_ms']:.2f} ms"
    )
    if "error" in cli:
        print(f"  CLI (JSONL in/out, 1 worker): failed: {cli['error']}")
    else:
        print(
            f"  CLI (JSONL in/out, 1 worker): {cli['checks_per_s']:.0f} checks/s in its verify phase (the worker "
            f"boots inside it), "
            f"{cli['wall_s']} s for the whole command ({cli['pairs']} rows)"
        )
    if "error" not in cli_common:
        print(
            f"  CLI on the common case ({cli_common['pairs']} rows): {cli_common['checks_per_s']:.0f} checks/s = "
            f"{cli_common['ratio_to_mathverify']}x math-verify's common-case rate"
        )
    st = ours_fig["startup_s"]
    print(f"  pool start (s): 1 worker {st['loop_1w'] + st['batch_1w']}, 2 workers {st['batch_2w']}")
    print()
    print(f"d) hostile inputs (timeout {HOSTILE_TIMEOUT:.1f} s, limit {HOSTILE_TIMEOUT + HOSTILE_SLACK:.1f} s)")
    for h in hostile + hostile_extra:
        if h is hostile_extra[0]:
            print("  extra (reach the parser, exercise timeout + respawn; not in the 9):")
        flags = []
        if h["flag_slow"]:
            flags.append("SLOW")
        if h["flag_correct"]:
            flags.append("CORRECT")
        print(
            f"  {h['name']:<26} {h['elapsed_s']:>7.3f} s  correct={str(h['correct']):<5}  reason={h['reason']:<10} "
            f"extracted={(h['extracted'] or '')[:24]!r:<28} {' '.join('<- ' + x for x in flags)}"
        )
    print(f"  {hostile_ok}/{len(hostile)} within timeout+1s; came back correct: {hostile_correct or 'none'}")
    print(
        f"  extra: {extra_ok}/{len(hostile_extra)} within timeout+1s, came back correct: {extra_correct or 'none'}; "
        f"wait for a respawned worker after a timeout: "
        f"{max(h['pre_wait_s'] for h in hostile_extra[1:]):.2f} s (not charged to the case)"
    )
    print()
    print("e) other graders' public test tables (agreement with each peer's expected verdict)")
    print(f"  {'source':<16} {'cases':>5} {'neg':>4}  {'ours':>11} {'FP':>3}  {'math-verify':>11} {'FP':>3}")
    rows = [
        *peer["by_source"].items(),
        ("ALL", peer["overall"]),
        ("ALL but MV", peer["without_math_verify"]),
        ("ALL adjudicated", peer["overall_adjudicated"]),
    ]
    for name, t in rows:
        o, m = t["ours"], t["mathverify"]
        print(
            f"  {name:<16} {t['cases']:>5} {t['negatives']:>4}  {o['agree']:>4} {100 * (o['agreement'] or 0):>5.1f}% "
            f"{o['false_pos']:>3}  {m['agree']:>4} {100 * (m['agreement'] or 0):>5.1f}% {m['false_pos']:>3}"
        )
    print(f"  disagreements -> {peer['disagreements_path']}")
    print(bar)
    print(f"total benchmark time {t_total:.1f} s")

    po, pm, pw = peer["overall"]["ours"], peer["overall"]["mathverify"], peer["without_math_verify"]
    headline = (
        f"verifier: peer tables ours {100 * po['agreement']:.1f}% (FP {po['false_pos']}) vs math-verify "
        f"{100 * pm['agreement']:.1f}% (FP {pm['false_pos']}) on {peer['overall']['cases']} cases, without MV's own "
        f"{100 * pw['ours']['agreement']:.1f}% vs {100 * pw['mathverify']['agreement']:.1f}%"
        f" | MATH labels ours {conf['ours_strict']['agree']}/{n} vs math-verify {conf['mathverify_verl']['agree']}/{n}"
        f" | 1 worker {one:.0f} checks/s cold, {one_warm:.0f} warm (math-verify {mv_fig['checks_per_s']:.0f}/s, "
        f"{ratios['ours_1w_cold_over_mathverify']:.1f}x)"
        f" | common case {common['ratio']:.1f}x math-verify ({common['ours_checks_per_s']:.0f}/s)"
        f" | 2 workers {two:.0f}/s ({ratios['scaling_2w_over_1w_cold']:.1f}x)"
        f" | p50 {lat['p50_ms']:.2f} ms p99 {lat['p99_ms']:.2f} ms"
        f" | hostile {hostile_ok}/{len(hostile)} within timeout+1s"
        f" ({len(hostile_correct)} correct: {', '.join(hostile_correct) or 'none'}; extra {extra_ok}/{len(hostile_extra)})"
    )

    report = {
        "meta": {
            "timestamp": dt.datetime.now().isoformat(timespec="seconds"),
            "host": platform.node(),
            "cpu_count": os.cpu_count(),
            "python": platform.python_version(),
            "math_verify": mv_version,
            "sympy": sympy.__version__,
            "data": str(data),
            "pairs": n,
            "repeats": REPEATS,
            "our_timeout_s": OUR_TIMEOUT,
            "total_s": round(t_total, 2),
            "notes": {
                "mathverify_verl": 'verify(parse("\\\\boxed{" + gt + "}"), parse(response)), in-process, main thread, default signal timeouts',
                "mathverify_dollar": 'verify(parse("$" + gt + "$"), parse(response))',
                "cold": "fresh Verifier per pass (empty worker parse cache), pool started before timing",
                "warm": "same Verifier, same 800 pairs again (worker lru_cache hits)",
                "latency": "wall per v.verify call measured in the caller, 1 worker",
            },
        },
        "accuracy": {
            **conf,
            "ours_vs_mathverify_verl": {f"ours_{o}_mv_{m}": c for (o, m), c in sorted(ours_vs_mv.items())},
            "ours_reasons": dict(Counter(d.reason for d in ours_verdicts)),
            "passes_with_changed_verdicts": {"ours": ours_inconsistent, "mathverify": mv_inconsistent},
            "mathverify_dollar_only_disagreements": dollar_only,
            "gold_answer_field": answer_field,
        },
        "disagreements": {"count": len(dis), "path": str(dis_path), "indices": [r["index"] for r in dis]},
        "peer_tables": peer,
        "throughput": {
            "ours": ours_fig,
            "mathverify": mv_fig,
            "ratios": ratios,
            "common_case": common,
            "cli": cli,
            "cli_common_case": cli_common,
        },
        "hostile": {
            "timeout_s": HOSTILE_TIMEOUT,
            "limit_s": HOSTILE_TIMEOUT + HOSTILE_SLACK,
            "within_limit": hostile_ok,
            "cases": hostile,
            "came_back_correct": hostile_correct,
            "extra_cases": hostile_extra,
            "extra_within_limit": extra_ok,
            "extra_came_back_correct": extra_correct,
        },
        "headline": headline,
    }
    json_path = out_dir / "verifier_benchmark.json"
    json_path.write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    print(f"figures -> {json_path}")
    sys.stdout.flush()
    print(headline, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
