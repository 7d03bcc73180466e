"""The curation report: ``report.json``, ``report.md`` and a bar chart of drop reasons."""

from __future__ import annotations

from pathlib import Path

from data.io import atomic_writer, write_json


def _cell(x) -> str:
    return str(x).replace("|", "\\|").replace("\n", " ")


def write_markdown(rep: dict, path: Path) -> None:
    lines = [
        "# Curation report",
        "",
        f"{rep['rows_in']} rows in, **{rep['kept']} kept** ({rep['train']} train, {rep['val']} val), "
        f"{rep['dropped']} dropped, in {rep['seconds']:.0f} s. "
        f"{rep['reformulated_multiple_choice']} kept rows were multiple choice, reformulated as open-ended.",
        "",
        "## Filters, in the order they ran",
        "",
        "| filter | rows in | dropped | seconds |",
        "|---|---:|---:|---:|",
    ]
    lines += [f"| {f['filter']} | {f['in']} | {f['dropped']} | {f['seconds']} |" for f in rep["filters"]]
    names = [f["filter"] for f in rep["filters"]]
    lines += [
        "",
        "## Per source",
        "",
        "| source | in | kept | " + " | ".join(names) + " |",
        "|---|---:|---:|" + "---:|" * len(names),
    ]
    for s, c in rep["by_source"].items():
        lines.append(
            f"| {s} | {c.get('in', 0)} | {c.get('kept', 0)} | " + " | ".join(str(c.get(n, 0)) for n in names) + " |"
        )
    if rep["contaminated_by_eval_set"] or rep["eval_sets"]:
        lines += ["", "## Contamination per evaluation set", "", "| evaluation set | rows dropped |", "|---|---:|"]
        lines += [f"| {e} | {rep['contaminated_by_eval_set'].get(e, 0)} |" for e in rep["eval_sets"]]
    lines += ["", "## Examples of each drop reason", ""]
    for f, exs in rep["examples"].items():
        lines += [f"### {f}", "", "| row | reason | question | answer |", "|---|---|---|---|"]
        lines += [
            f"| {_cell(e['uid'])} | {_cell(e['reason'])} | {_cell(e['question'][:160])} | {_cell(e['answer'])} |"
            for e in exs
        ]
        lines.append("")
    lines += ["![drop reasons](drop_reasons.png)", ""]
    with atomic_writer(path) as f:
        f.write("\n".join(lines))


def write_chart(rep: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    items = [(f["filter"], f["dropped"]) for f in rep["filters"]]
    fig, ax = plt.subplots(figsize=(7, 0.35 * len(items) + 1.2))
    ax.barh([n for n, _ in items][::-1], [d for _, d in items][::-1], color="#c0504d")
    for i, (_, d) in enumerate(items[::-1]):
        ax.text(d, i, f" {d}", va="center", fontsize=8)
    ax.set(xlabel="rows dropped", title=f"{rep['kept']} of {rep['rows_in']} rows kept")
    fig.tight_layout()
    with atomic_writer(path, "wb") as f:
        fig.savefig(f, format="png", dpi=100)
    plt.close(fig)


def write_report(rep: dict, out: Path) -> None:
    write_chart(rep, out / "drop_reasons.png")
    write_json(out / "report.json", rep)
    write_markdown(rep, out / "report.md")
