"""The import layers (issue 24): ``data`` (I/O and datasets) imports nothing of the project,
``rewards`` (the verifier and reward terms) only ``data``, ``pipeline.models`` no stage; and
no two modules import each other, deferred imports inside functions counted."""

from __future__ import annotations

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ("data", "rewards", "pipeline")


def _modules() -> dict[str, Path]:
    out = {}
    for pkg in PACKAGES:
        for p in (REPO / pkg).rglob("*.py"):
            name = ".".join(p.relative_to(REPO).with_suffix("").parts)
            out[name.removesuffix(".__init__")] = p
    return out


MODULES = _modules()


def _imports(path: Path) -> set[str]:
    """Project modules ``path`` imports anywhere in its body (top level or deferred)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        names = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module, *(f"{node.module}.{a.name}" for a in node.names)]
        for n in names:
            while n and n not in MODULES:
                n = n.rpartition(".")[0]
            if n:
                found.add(n)
    return found


GRAPH = {m: _imports(p) - {m} for m, p in MODULES.items()}


def test_lower_layers_import_nothing_above_them():
    allowed = {
        "data": ("data",),
        "rewards": ("data", "rewards"),
        "pipeline.config": ("data", "rewards", "pipeline.config"),
        "pipeline.models": ("data", "rewards", "pipeline.config", "pipeline.models"),
    }
    for module, deps in GRAPH.items():
        for layer, ok in allowed.items():
            if module == layer or module.startswith(layer + "."):
                bad = sorted(d for d in deps if not any(d == o or d.startswith(o + ".") for o in ok))
                assert not bad, f"{module} (layer {layer}) imports {bad}"


def test_no_import_cycles_between_modules():
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    cycles = []

    def visit(v: str) -> None:  # Tarjan's strongly connected components
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in GRAPH[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                cycles.append(sorted(comp))

    for m in GRAPH:
        if m not in index:
            visit(m)
    assert not cycles, f"modules that import each other: {cycles}"


def test_the_checker_sees_deferred_imports():
    """A deferred import counts: pipeline.evaluate.run imports data.benchmarks inside a function."""
    assert "data.benchmarks" in GRAPH["pipeline.evaluate.run"]


def _stage(module: str) -> str | None:
    for stage in ("pipeline.curate", "pipeline.train", "pipeline.evaluate"):
        if module == stage or module.startswith(stage + "."):
            return stage
    return None


def test_stages_stand_side_by_side_and_under_orchestration():
    """train and evaluate share what they share through the layers below (the reward ideas in
    ``rewards``, generation and value models in ``pipeline.models``); curation's difficulty
    step reuses evaluation's generator, one way; no stage imports the CLI, demo or Slurm."""
    across = sorted(
        (m, d) for m, deps in GRAPH.items() for d in deps if _stage(m) and _stage(d) and _stage(m) != _stage(d)
    )
    assert all(m.startswith("pipeline.curate.") and d.startswith("pipeline.evaluate.") for m, d in across), across
    orchestration = ("pipeline.cli", "pipeline.demo", "pipeline.slurm", "pipeline.__main__")
    for module, deps in GRAPH.items():
        if _stage(module) or module.startswith(("pipeline.models", "rewards", "data")):
            assert not deps & set(orchestration), f"{module} imports {sorted(deps & set(orchestration))}"


def test_tests_mirror_the_source_tree():
    """tests/<package path>/test_*.py sits beside the package it tests (tests/pipeline/train/
    for pipeline/train/); only the whole-project tests stay at the top."""
    placed = [p.relative_to(REPO / "tests") for p in (REPO / "tests").rglob("test_*.py")]
    nested = [p for p in placed if len(p.parts) > 1]
    assert nested, "no test sits in a package folder"
    for p in nested:
        assert (REPO / p.parent / "__init__.py").is_file(), f"tests/{p} mirrors no package {p.parent}/"


def test_a_modules_test_file_sits_in_its_packages_folder():
    """A test file named after a module (tests/.../test_<module>.py) is in that module's mirror
    folder: tests/rewards/test_progress.py tests rewards/progress.py, and nothing else is called
    test_progress.py. Modules whose names recur in several packages (config, run, report) are
    left out, as each package's test of them sits in its own folder."""
    homes: dict[str, set[Path]] = {}
    for path in MODULES.values():
        if not path.name.startswith("_"):
            homes.setdefault(path.stem, set()).add(path.parent.relative_to(REPO))
    unique = {stem: next(iter(dirs)) for stem, dirs in homes.items() if len(dirs) == 1}
    assert {"progress", "self_correction", "prover", "terms"} <= set(unique)
    misplaced = []
    for p in (REPO / "tests").rglob("test_*.py"):
        stem = p.stem.removeprefix("test_")
        if stem in unique and p.parent.relative_to(REPO / "tests") != unique[stem]:
            misplaced.append(f"tests/{p.relative_to(REPO / 'tests')} (for {unique[stem]}/{stem}.py)")
    assert not misplaced, misplaced
