"""Evaluation reports: ``report.json``, ``report.md``, plots, and run-vs-run comparison.

``report.json`` keeps the overall figures at the top level (``"pass@1": 91.0``,
``"maj@8": 93.0``, ...; percent), their intervals under ``ci``, and the same per
benchmark under ``benchmarks``. Overall figures pool every problem of every
benchmark (a micro-average).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from data.io import InputError, atomic_writer, write_json

_KEY_ORDER = {"pass": 0, "maj": 1, "bon": 2, "wbon": 3}


def _k(name: str) -> tuple[str, int] | None:
    m = re.fullmatch(r"(\w+)@(\d+)", name)
    return (m.group(1), int(m.group(2))) if m else None


def shown_metrics(metrics: dict, ks: list[int] | None) -> list[str]:
    """The metric names a table shows: every non-@k figure, and @k figures for
    ``ks`` (default: powers of two and the largest k)."""
    out = []
    kmax = max((_k(n)[1] for n in metrics if _k(n)), default=1)
    for name in metrics:
        k = _k(name)
        if k is None:
            out.append(name)
            continue
        if (ks and k[1] in ks) or (not ks and (k[1] & (k[1] - 1) == 0 or k[1] == kmax)):
            out.append(name)
    return out


def _table(summary: dict, ks: list[int] | None) -> list[str]:
    m, ci = summary["metrics"], summary["ci"]
    level = int(round(summary.get("confidence", 0.95) * 100))
    lines = [f"| metric | value | {level}% CI |", "|---|---:|---|"]
    for name in shown_metrics(m, ks):
        interval = ci.get(name)
        shown = f"[{interval[0]:.2f}, {interval[1]:.2f}]" if interval else "-"
        lines.append(f"| {name} | {m[name]:.2f} | {shown} |")
    if "mean_tokens" in summary:
        lines.append(f"| mean tokens / response | {summary['mean_tokens']:.1f} | |")
        if summary.get("correct_per_1k_tokens") is not None:
            lines.append(f"| correct answers / 1k tokens | {summary['correct_per_1k_tokens']:.3f} | |")
    if summary.get("not_reported"):
        lines.append(
            f"\nNot reported: {', '.join(summary['not_reported']['metrics'])} ({summary['not_reported']['why']})."
        )
    return lines


def write_markdown(report: dict, path: Path, ks: list[int] | None = None) -> None:
    lines = ["# Evaluation report", ""]
    s = report.get("settings", {})
    if s.get("model"):
        drawn = "searched (below)" if report.get("search") else f"n = {s.get('n')} samples per problem"
        lines.append(
            f"Model: `{s['model']}`; {drawn}, temperature {s.get('temperature')}, "
            f"at most {s.get('max_new_tokens')} new tokens."
        )
    if s.get("generations"):
        lines.append(f"Scored from `{s['generations']}`.")
    lines.append(
        f"Correctness: {report.get('graded_by', '?')}. Figures in percent; intervals are bootstrap "
        "percentile intervals over problems."
    )
    lines.append("")
    sr = report.get("search")
    if sr:
        width = f", beam width {sr['beam_width']}" if sr.get("beam_width") else ""
        acc = f"{sr['accuracy']:.1f}%" if sr.get("accuracy") is not None else "n/a"
        lines += [
            "## Search",
            "",
            f"{sr['strategy']} with budget {sr['budget']}{width}, steps scored by {sr['scorer']} "
            f"({sr['aggregate']}): the pick ({sr['pick']}, over {sr['candidates']} candidates) is right on {acc} "
            f"of problems, for {sr['generated_tokens_per_problem']:.0f} generated tokens per problem "
            "(pruned continuations included)"
            + (
                f"; the scorer sampled {sr['scorer_tokens_per_problem']:.0f} more per problem to rate the steps."
                if sr.get("scorer_tokens_per_problem")
                else "."
            ),
            "",
        ]
        if sr.get("chosen"):
            picked = ", ".join(f"{name} x {n}" for name, n in sorted(sr["chosen"].items()))
            lines += [f"Adaptive allocation from `{sr['allocation']}`: {picked} problems.", ""]
    lines += [f"## Overall ({report['overall']['problems']} problems, {report['overall']['responses']} responses)", ""]
    lines += _table(report["overall"], ks) + [""]
    if len(report["benchmarks"]) > 1:
        for name, b in report["benchmarks"].items():
            lines += [f"## {name} ({b['problems']} problems)", ""] + _table(b, ks) + [""]
    d = report.get("disagreements")
    if d:
        lines += [
            "## Verifier vs the file's own grades",
            "",
            f"The project's verifier and the file's `{d['file_key']}` agree on {d['compared'] - d['disagree']} of "
            f"{d['compared']} responses ({d['agreement'] * 100:.2f}%).",
            "",
        ]
        if d["examples"]:
            lines += [
                "| benchmark | id | response | verifier | file | extracted | reference | reason |",
                "|---|---|---:|---|---|---|---|---|",
            ]
            for e in d["examples"]:
                cells = [
                    e["benchmark"],
                    e["id"],
                    e["response"],
                    e["verifier"],
                    e["file"],
                    f"`{e['extracted']}`",
                    f"`{e['reference']}`",
                    e["reason"],
                ]
                lines.append("| " + " | ".join(str(c).replace("|", "\\|").replace("\n", " ") for c in cells) + " |")
            lines.append("")
    if report.get("plots"):
        lines += ["## Plots", ""] + [f"![{Path(p).stem}]({p})" for p in report["plots"]] + [""]
    with atomic_writer(path) as f:
        f.write("\n".join(lines))


def plot_curves(
    curves: dict[str, list[tuple[float, float]]],
    path: Path,
    *,
    xlabel: str,
    ylabel: str,
    title: str = "",
    log2_x: bool = False,
) -> None:
    """One line per named curve of (x, y) points, as PNG (the benchmarks' curves, allocate's plot)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for name, pts in curves.items():
        if pts:
            xs, ys = zip(*pts)
            ax.plot(xs, ys, marker="o", markersize=3, label=name)
    if log2_x:
        ax.set_xscale("log", base=2)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if title:
        ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def write_plots(report: dict, out: Path) -> list[str]:
    """pass@k and best-of-N accuracy vs N, and accuracy vs response length, as PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    made = []
    parts = {"overall": report["overall"], **(report["benchmarks"] if len(report["benchmarks"]) > 1 else {})}

    def series(summary: dict, kind: str) -> tuple[list[int], list[float]]:
        pts = sorted((_k(n)[1], v) for n, v in summary["metrics"].items() if _k(n) and _k(n)[0] == kind)
        return [p[0] for p in pts], [p[1] for p in pts]

    fig, ax = plt.subplots(figsize=(6, 4))
    for name, s in parts.items():
        ks, vs = series(s, "pass")
        if ks:
            ax.plot(ks, vs, marker="o", label=name)
    made.append(
        _finish(fig, ax, series(report["overall"], "pass")[0], "k", "pass@k (%)", "pass@k", out / "pass_at_k.png")
    )

    fig, ax = plt.subplots(figsize=(6, 4))
    for kind, label in (
        ("pass", "pass@N (oracle)"),
        ("maj", "majority vote"),
        ("bon", "best-of-N (verifier)"),
        ("wbon", "weighted best-of-N"),
    ):
        ks, vs = series(report["overall"], kind)
        if kind == "pass":
            ks, vs = zip(*[(k, v) for k, v in zip(ks, vs) if k & (k - 1) == 0 or k == max(ks)]) if ks else ([], [])
        if ks:
            ax.plot(ks, vs, marker="o", label=label)
    made.append(
        _finish(
            fig,
            ax,
            series(report["overall"], "pass")[0],
            "N",
            "accuracy (%)",
            "accuracy vs N (overall)",
            out / "bon_vs_n.png",
        )
    )

    bins = report["overall"].get("acc_by_length")
    if bins:
        fig, ax = plt.subplots(figsize=(6, 4))
        labels = [f"{b['min_tokens']:.0f}-{b['max_tokens']:.0f}" for b in bins]
        ax.bar(labels, [b["acc"] for b in bins])
        ax.set(xlabel="response length (tokens), quantile bins", ylabel="accuracy (%)", title="accuracy vs length")
        made.append(_save(fig, out / "acc_vs_length.png"))
    return [p.name for p in made]


def _finish(fig, ax, ks: list[int], xlabel: str, ylabel: str, title: str, path: Path) -> Path:
    """A log-2 k axis with plain integer ticks (powers of two and the largest k), labels, legend; saved."""
    from matplotlib.ticker import FixedLocator, NullLocator, ScalarFormatter

    ax.set_xscale("log", base=2)
    ticks = [k for k in ks if k & (k - 1) == 0 or k == max(ks)]
    ax.xaxis.set_major_locator(FixedLocator(ticks or [1]))
    ax.xaxis.set_minor_locator(NullLocator())
    ax.xaxis.set_major_formatter(ScalarFormatter())
    ax.set(xlabel=xlabel, ylabel=ylabel, title=title)
    ax.legend(fontsize=8)
    return _save(fig, path)


def _save(fig, path: Path) -> Path:
    import matplotlib.pyplot as plt

    with atomic_writer(path, "wb") as f:
        fig.tight_layout()
        fig.savefig(f, format="png", dpi=100)
    plt.close(fig)
    return path


def write_report(report: dict, out: Path, *, plots: bool = True, ks: list[int] | None = None) -> None:
    out.mkdir(parents=True, exist_ok=True)
    if plots:
        report["plots"] = write_plots(report, out)
    write_json(out / "report.json", report)
    write_markdown(report, out / "report.md", ks)


def load_report(path: str | Path) -> dict:
    p = Path(path)
    if p.is_dir():
        p = p / "report.json"
    if not p.is_file():
        raise InputError(f"{p}: no such report (give an evaluation output directory or its report.json)")
    try:
        rep = json.loads(p.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise InputError(f"{p}: not valid JSON ({e})") from None
    if (
        not isinstance(rep, dict)
        or not isinstance(rep.get("overall"), dict)
        or not isinstance(rep.get("benchmarks"), dict)
    ):
        raise InputError(f"{p}: not an evaluation report (no overall / benchmarks sections)")
    return rep


def run_name(path: str | Path) -> str:
    """A short label for a run: its directory's name (also when given its report.json)."""
    p = Path(path).resolve()
    return p.parent.name if p.is_file() else p.name


def compare_markdown(a: dict, b: dict, name_a: str, name_b: str, ks: list[int] | None = None) -> str:
    """Two runs side by side: each benchmark's shared metrics, with B - A."""
    lines = [f"| benchmark | metric | {name_a} | {name_b} | Δ |", "|---|---|---:|---:|---:|"]
    parts = [("overall", a["overall"], b["overall"])]
    if len(a["benchmarks"]) > 1 or len(b["benchmarks"]) > 1:  # with one benchmark, overall says it all
        parts += [(n, a["benchmarks"][n], b["benchmarks"][n]) for n in a["benchmarks"] if n in b["benchmarks"]]
    for name, x, y in parts:
        for m in shown_metrics(x["metrics"], ks):
            if m in y["metrics"]:
                va, vb = x["metrics"][m], y["metrics"][m]
                lines.append(f"| {name} | {m} | {va:.2f} | {vb:.2f} | {vb - va:+.2f} |")
        for m in ("mean_tokens",):
            if m in x and m in y:
                lines.append(f"| {name} | {m} | {x[m]:.1f} | {y[m]:.1f} | {y[m] - x[m]:+.1f} |")
    only = sorted(set(a["benchmarks"]) ^ set(b["benchmarks"]))
    if only:
        lines.append(f"\nIn one run only: {', '.join(only)}.")
    return "\n".join(lines) + "\n"
