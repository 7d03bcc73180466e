"""Every reward idea the trainers use, in one registry: what it is, at which level it acts,
where a config turns it on, and where its pure part lives.

The ideas act at three levels, which combine differently, so each level keeps its own way
of composing them:

* ``response``: one number per response, summed with weights by
  :func:`rewards.terms.compose` (the verifier's outcome, ALP, the length baselines); these
  are exactly the entries of :data:`rewards.terms.TERMS`, listed here from it;
* ``step``: a bonus on each step's tokens, added to the advantage (progress-based process
  rewards, PAV and MRT; :mod:`rewards.progress`);
* ``turn``: a second attempt after a feedback turn, each attempt trained on its own target
  (self-correction, SCoRe; :mod:`rewards.self_correction`).

:func:`active_ideas` reads a train config the same way for both engines; the CLI prints it
when a run starts and ``rl-pipeline train --list-rewards`` prints :func:`describe`.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass

from rewards.terms import TERMS

LEVELS = ("response", "step", "turn")


@dataclass(frozen=True)
class RewardIdea:
    name: str
    level: str  # one of LEVELS
    config: str  # where a train config turns it on
    module: str  # where its pure part lives
    summary: str  # one line: what it rewards, and its source

    def __post_init__(self) -> None:
        if self.level not in LEVELS:
            raise ValueError(f"reward idea {self.name!r}: level must be one of {LEVELS}, not {self.level!r}")


# the ideas that are not per-response terms; the terms come from TERMS (see reward_ideas)
_OTHER_IDEAS = (
    RewardIdea(
        "progress",
        "step",
        "progress.enabled",
        "rewards.progress",
        "Progress-based process rewards, a prover's gain on each step (PAV, arXiv 2410.08146; MRT, arXiv 2503.07572)",
    ),
    RewardIdea(
        "self_correction",
        "turn",
        "self_correction.enabled",
        "rewards.self_correction",
        "Self-correction turns, each attempt trained on its own target (SCoRe, arXiv 2409.12917)",
    ),
)


def _headline(fn) -> str:
    """A term's docstring up to its first colon or full stop: what it is, not its formula."""
    doc = " ".join((inspect.getdoc(fn) or "").split()).replace("``", "")
    return doc.split(". ")[0].split(": ")[0].rstrip(".") if doc else fn.__name__


def reward_ideas() -> dict[str, RewardIdea]:
    """``{name: RewardIdea}``: the registered reward terms (at the time of the call, so a
    plugin's terms are listed) and the step- and turn-level ideas."""
    out = {
        name: RewardIdea(name, "response", f"reward.terms.{name}", fn.__module__, _headline(fn))
        for name, fn in TERMS.items()
    }
    for idea in _OTHER_IDEAS:
        if idea.name in out:
            raise ValueError(f"reward term {idea.name!r} shadows the {idea.level}-level reward idea of that name")
        out[idea.name] = idea
    return out


def active_ideas(cfg) -> list[RewardIdea]:
    """The ideas a train config turns on, level by level: its reward terms (in config order),
    then progress, then self-correction. ``cfg`` is a ``TrainConfig`` (read for
    ``reward.terms``, ``progress.enabled``, ``self_correction.enabled``)."""
    ideas = reward_ideas()
    out = [ideas[name] for name in cfg.reward.terms if name in ideas]
    out += [idea for idea in _OTHER_IDEAS if getattr(cfg, idea.name).enabled]
    return out


def active_summary(cfg) -> str:
    """One line for a run's log: ``outcome + alp (response), progress (step)``."""
    parts = []
    for level in LEVELS:
        names = [i.name for i in active_ideas(cfg) if i.level == level]
        if names:
            parts.append(f"{' + '.join(names)} ({level})")
    return ", ".join(parts)


def misplaced_term_hint(name: str) -> str | None:
    """For a ``reward.terms`` entry naming a step- or turn-level idea: where it is set instead."""
    for idea in _OTHER_IDEAS:
        if idea.name == name:
            return f"{name} is a {idea.level}-level reward idea, not a reward term: set {idea.config}: true instead"
    return None


def describe() -> str:
    """A table of every reward idea: name, level, where a config turns it on, what it is."""
    rows = [(i.name, i.level, i.config, i.summary) for i in reward_ideas().values()]
    rows.sort(key=lambda r: LEVELS.index(r[1]))
    widths = [max(len(r[c]) for r in rows + [("idea", "level", "config", "")]) for c in range(3)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(("idea", "level", "config"), widths)) + "  what"]
    lines += ["  ".join(v.ljust(w) for v, w in zip(r[:3], widths)) + "  " + r[3] for r in rows]
    return "\n".join(lines)
