"""Test-time search: spend a generation budget per problem on N samples or on a step-level
tree guided by a step scorer, and hand the evaluate stage the candidates it ends with.

Strategies (``search.strategy``), for a budget of N and a beam width M:

* ``bon``: N independent samples; the report's pick is the one with the best score
  (``bon@N``), every step scored and the scores combined by ``aggregate``;
* ``weighted_bon``: the same samples; the pick is the answer with the largest summed
  score (``wbon@N``);
* ``beam``: step-level beam search (Snell et al. 2024, arXiv 2408.03314; PAV, arXiv
  2410.08146): N/M beams; at each step every beam is continued M times by one step (N
  continuations), the scorer rates each new step, and the N/M best paths by their
  aggregated step scores are kept. A path that ends (EOS, or the token budget) is a
  candidate and keeps its slot;
* ``dvts``: diverse verifier tree search (Beeching et al. 2024): N/M subtrees, each
  greedy on its own: its beam is continued M times and the best continuation kept, so
  the N/M candidates do not collapse onto one high-scoring prefix.

``adaptive`` (Snell et al.'s compute-optimal choice) bins each problem by the process
verifier's value of the bare question and runs the setting (strategy, beam width and step
scorer) that ``rl-pipeline allocate`` found best for that bin at this budget; it keeps only each problem's pick (the best-scored
candidate, or the weighted vote's winner), so its ``pass@1`` is the pick's accuracy.

Both tree searches are one loop (:func:`tree_search`) with two selection rules. A step
is what the training engines call a step (``split: lines`` or MRT's ``episodes``,
:mod:`rewards.progress`): a continuation is sampled up to ``step_tokens`` tokens (the
backends stop at the split's boundary string) and cut at its first step end; at
``max_steps`` each open beam is instead completed to the token budget. Every search
ends with a fixed number of candidates (N for the sampling strategies, N/M for the tree
searches), each with its per-step scores, and counts the tokens it generated: the
compute the accuracy-vs-tokens comparison is drawn against.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from pipeline.evaluate.metrics import ProblemResult, aggregate_score, vote_weights, vote_winner

STRATEGIES = ("bon", "weighted_bon", "beam", "dvts", "adaptive")
TREE_SEARCHES = ("beam", "dvts")
SCORERS = ("pav", "orm", "genrm", "likelihood", "mc")
# the model a step scorer reads, as (EvalConfig field, what it is); the others need none
SCORER_INPUTS = {
    "pav": ("process_verifier", "a PAV model: rl-pipeline pav"),
    "genrm": ("genrm", "a causal LM that answers Yes/No"),
    "orm": ("reward_model", "a sequence-classification reward model"),
}


def missing_scorer_input(cfg, scorer: str) -> str | None:
    """``"needs <field> (<what>)"`` when ``cfg`` (an EvalConfig) lacks the model ``scorer`` reads."""
    field_, what = SCORER_INPUTS.get(scorer, (None, ""))
    return f"needs {field_} ({what})" if field_ and not getattr(cfg, field_) else None


# the report metric of each pick; an adaptive search keeps only its pick, so pass@1 is the pick's accuracy
PICK = {"bon": "bon", "weighted_bon": "wbon", "beam": "bon", "dvts": "bon", "adaptive": "pass"}


@dataclass
class Candidate:
    """A partial or complete solution: its tokens, one score per step, and whether it ended."""

    tokens: list[int]
    steps: list[float] = field(default_factory=list)
    done: bool = False
    subtree: int = 0

    def score(self, how: str) -> float:
        return aggregate_score(self.steps, how) if self.steps else float("-inf")


@dataclass
class SearchResult:
    """One problem's outcome: the candidates, and what the search cost."""

    candidates: list[Candidate]
    generated_tokens: int = 0  # tokens the policy sampled, pruned continuations included
    continuations: list[int] = field(default_factory=list)  # continuations sampled at each depth
    scorer_seconds: float = 0.0
    scorer_tokens: float = 0.0  # tokens a sampling scorer (mc) drew to rate this problem's steps


def _scorer_tokens(scorer) -> int:
    """Tokens a step scorer has sampled so far (the Monte Carlo rater's continuations; 0 for
    scorers that only read)."""
    return int(getattr(scorer, "sampled_tokens", 0))


# scorer(prompts, responses, ends) -> per response, one score per step (len(ends[i]) of them)
StepScorer = Callable[[Sequence[Sequence[int]], Sequence[Sequence[int]], Sequence[Sequence[int]]], list[list[float]]]


class Stepper:
    """Continues paths by one step with a rollout backend and cuts each at its first step end."""

    def __init__(self, rollout, segment, eos_ids: set[int], *, temperature: float, top_p: float, stop=()):
        self.rollout, self.segment, self.eos = rollout, segment, set(eos_ids)
        self.temperature, self.top_p, self.stop = temperature, top_p, tuple(stop)

    def sample(self, prompts, n: int, room: int, stop: bool) -> list[list[list[int]]]:
        from pipeline.models.rollout import Sampling

        sampling = Sampling(self.temperature, self.top_p, room, stop=self.stop if stop else ())
        return self.rollout.generate(prompts, n, sampling)

    def first_step(self, prefix: Sequence[int], continuation: Sequence[int]) -> list[int]:
        """The continuation up to the end of its first step (all of it when it holds one step)."""
        full = list(prefix) + list(continuation)
        for end in self.segment(full):
            if end > len(prefix):
                return full[len(prefix) : end]
        return list(continuation)

    def ended(self, tokens: Sequence[int], max_new_tokens: int) -> bool:
        return bool(tokens) and (tokens[-1] in self.eos or len(tokens) >= max_new_tokens)


def _score_new_steps(scorer: StepScorer, prompts, paths: list[Candidate], segment) -> tuple[float, int]:
    """Rate the newest step of each path (appended to its ``steps``); returns the seconds spent
    and the tokens the scorer sampled."""
    if not paths:
        return 0.0, 0
    t0, n0 = time.perf_counter(), _scorer_tokens(scorer)
    ends = [segment(p.tokens) or [len(p.tokens)] for p in paths]
    scores = scorer(prompts, [p.tokens for p in paths], ends)
    for p, s in zip(paths, scores, strict=True):
        if not len(s):
            raise ValueError("a step scorer returned no score for a path")
        p.steps.append(float(s[-1]))
    return time.perf_counter() - t0, _scorer_tokens(scorer) - n0


def sample_search(
    prompts: Sequence[Sequence[int]],
    stepper: Stepper,
    scorer: StepScorer,
    *,
    budget: int,
    max_new_tokens: int,
) -> list[SearchResult]:
    """``bon`` / ``weighted_bon``: ``budget`` full samples per prompt, every step scored."""
    groups = stepper.sample(prompts, budget, max_new_tokens, stop=False)
    out = []
    for prompt, group in zip(prompts, groups, strict=True):
        cands = [Candidate(list(t), done=True) for t in group]
        t0, n0 = time.perf_counter(), _scorer_tokens(scorer)
        ends = [stepper.segment(c.tokens) or [len(c.tokens)] for c in cands]
        for c, s in zip(cands, scorer([prompt] * len(cands), [c.tokens for c in cands], ends), strict=True):
            c.steps = [float(x) for x in s]
        out.append(
            SearchResult(
                cands,
                generated_tokens=sum(len(t) for t in group),
                continuations=[budget],
                scorer_seconds=time.perf_counter() - t0,
                scorer_tokens=_scorer_tokens(scorer) - n0,
            )
        )
    return out


def tree_search(
    prompts: Sequence[Sequence[int]],
    stepper: Stepper,
    scorer: StepScorer,
    *,
    strategy: str,
    budget: int,
    width: int,
    max_steps: int,
    step_tokens: int,
    max_new_tokens: int,
    aggregate: str = "last",
) -> list[SearchResult]:
    """``beam`` or ``dvts`` for every prompt at once (one batched rollout call per depth and
    step length): ``budget // width`` paths per prompt, each continued ``width`` times per
    step; ends with exactly ``budget // width`` candidates per prompt."""
    if strategy not in TREE_SEARCHES:
        raise ValueError(f"tree search strategy must be one of {TREE_SEARCHES}, not {strategy!r}")
    if width < 1 or budget < width or budget % width:
        raise ValueError(f"budget ({budget}) must be a positive multiple of the beam width ({width})")
    keep = budget // width
    results = [SearchResult([]) for _ in prompts]
    active = [[Candidate([], subtree=i) for i in range(keep)] for _ in prompts]
    for depth in range(max_steps):
        last = depth == max_steps - 1
        todo = [(i, c) for i, beams in enumerate(active) for c in beams]
        if not todo:
            break
        children: list[list[Candidate]] = [[] for _ in prompts]
        rooms: dict[int, list[tuple[int, Candidate]]] = {}
        for i, c in todo:  # one rollout call per step length: a path near the budget gets a shorter step
            room = max_new_tokens - len(c.tokens) if last else min(step_tokens, max_new_tokens - len(c.tokens))
            rooms.setdefault(room, []).append((i, c))
        for room, group in rooms.items():
            conts = stepper.sample([list(prompts[i]) + c.tokens for i, c in group], width, room, stop=not last)
            for (i, c), options in zip(group, conts, strict=True):
                for cont in options:
                    results[i].generated_tokens += len(cont)
                    step = list(cont) if last else stepper.first_step(c.tokens, cont)
                    tokens = c.tokens + step
                    done = last or not step or stepper.ended(tokens, max_new_tokens)
                    children[i].append(Candidate(tokens, list(c.steps), done, c.subtree))
        flat = [(i, ch) for i, kids in enumerate(children) for ch in kids]
        for r, n in zip(results, (len(k) for k in children)):
            r.continuations.append(n)
        t, n = _score_new_steps(scorer, [prompts[i] for i, _ in flat], [ch for _, ch in flat], stepper.segment)
        for i, kids in enumerate(children):  # one batched call: its cost shared by each problem's paths
            results[i].scorer_seconds += t * len(kids) / max(1, len(flat))
            results[i].scorer_tokens += n * len(kids) / max(1, len(flat))
            chosen = _select(strategy, kids, keep - len(results[i].candidates), aggregate)
            results[i].candidates += [c for c in chosen if c.done]
            active[i] = [c for c in chosen if not c.done]
    for r in results:
        r.candidates = sorted(r.candidates, key=lambda c: c.subtree)
    return results


def _select(strategy: str, kids: list[Candidate], slots: int, how: str) -> list[Candidate]:
    """Beam search: the ``slots`` best children of all beams. DVTS: each subtree's best child."""
    if strategy == "beam":
        order = sorted(range(len(kids)), key=lambda j: (-kids[j].score(how), j))
        return [kids[j] for j in order[: max(0, slots)]]
    best: dict[int, Candidate] = {}
    for c in kids:  # the first of equal scores wins, as in the beam order
        if c.subtree not in best or c.score(how) > best[c.subtree].score(how):
            best[c.subtree] = c
    return list(best.values())


# ----------------------------------------------------------------------------- the evaluate stage's searcher


class Searcher:
    """The evaluate stage's generator when ``search.strategy`` is set: the same
    ``generate(problems) -> rows`` as :class:`pipeline.evaluate.generate.Generator` (so
    generation stays resumable a chunk at a time), each row holding the search's candidates
    as ``responses`` with their aggregated ``scores``, per-step ``step_scores`` and what the
    search cost (``search``)."""

    def __init__(self, cfg, generator, *, verifier=None, log=None):
        from pipeline.config import ProgressConfig
        from pipeline.models.prover import StepSegmenter
        from rewards.progress import EPISODE_MARKERS

        self.cfg, self.gen, self.tok = cfg, generator, generator.tokenizer
        s, g = cfg.search, cfg.generation
        self.segment = StepSegmenter(ProgressConfig(split=s.split, max_steps=10_000), self.tok)
        eos = set(getattr(generator.rollout, "eos_ids", {self.tok.eos_token_id}))
        stop = ("\n",) if s.split == "lines" else tuple(f"\n\n{m}" for m in EPISODE_MARKERS)
        self.stepper = Stepper(
            generator.rollout, self.segment, eos, temperature=g.temperature, top_p=g.top_p, stop=stop
        )
        self.questions: dict[tuple, str] = {}
        self.answers: dict[tuple, str] = {}
        self.verifier, self.log = verifier, log
        self._scorers: dict[str, Callable] = {}
        if s.strategy != "adaptive":
            self.scorer = self.scorer_for(s.scorer)
        else:
            from pipeline.evaluate.allocation import load_allocation
            from pipeline.evaluate.scoring import PAVStepScorer

            self.allocation = load_allocation(s.allocation, s.budget)
            # the process verifier's value of the bare question, as allocate read it
            self.difficulty = PAVStepScorer(cfg.process_verifier, tokenizer=self.tok, device=cfg.model.device)
            used = list(self.allocation["choices"].values())
            self._fallback = max(used, key=lambda c: sum(u["run"] == c["run"] for u in used))
            for c in used:  # every scorer the table names, built (and its inputs checked) before searching
                self.scorer_for(c.get("scorer", "pav"))
            if log:
                table = ", ".join(f"bin {k}: {c['run']}" for k, c in sorted(self.allocation["choices"].items()))
                log(f"adaptive search at budget {s.budget}: {table}")

    def scorer_for(self, name: str) -> Callable:
        """The step scorer ``name`` (``search.scorer``'s choices), built once."""
        if name not in self._scorers:
            self._scorers[name] = self._build_scorer(name)
        return self._scorers[name]

    def _build_scorer(self, name: str):
        from pipeline.config import ConfigError
        from pipeline.evaluate import scoring

        cfg, s, verifier, log = self.cfg, self.cfg.search, self.verifier, self.log
        missing = missing_scorer_input(cfg, name)
        if missing:  # search.scorer is checked with the config; an allocation's scorers only here
            raise ConfigError(f"step scorer {name} (chosen by search.allocation) {missing}")
        if name == "pav":
            return scoring.PAVStepScorer(
                cfg.process_verifier,
                base=cfg.process_base_verifier,
                alpha=cfg.process_alpha,
                tokenizer=self.tok,
                device=cfg.model.device,
            )
        if name == "likelihood":
            model = getattr(self.gen.rollout, "model", None)
            if model is None:  # the vLLM backend: the policy's HF weights beside it
                from pipeline.models.policy import load_policy

                model, _ = load_policy(cfg.model.path, gguf_file=cfg.model.gguf_file, device=cfg.model.device)
            pad = self.tok.pad_token_id if self.tok.pad_token_id is not None else next(iter(self.stepper.eos))
            return scoring.LikelihoodStepScorer(model, pad)
        if name in ("orm", "genrm"):
            if name == "orm":
                rm = scoring.RewardModel(cfg.reward_model, device=cfg.model.device)
            else:
                from pipeline.models.generative_verifier import GenerativeVerifier

                rm = GenerativeVerifier(
                    cfg.genrm, device=cfg.model.device, rationales=cfg.genrm_rationales, seed=cfg.seed
                )
            return scoring.PrefixScorer(scoring.reward_model_rater(rm, self.tok, self.questions))
        if name != "mc":
            raise ConfigError(f"unknown step scorer {name!r}; choose from {', '.join(SCORERS)}")
        from pipeline.models.rollout import Sampling

        if verifier is None:
            raise ValueError("search.scorer mc needs a verifier")
        g = cfg.generation
        mc = scoring.MonteCarloRater(
            self.gen.rollout,
            self.tok,
            verifier,
            rollouts=s.mc_rollouts,
            sampling=Sampling(g.temperature or 1.0, g.top_p, g.max_new_tokens),
            max_new_tokens=g.max_new_tokens,
            ended=lambda tokens: self.stepper.ended(tokens, g.max_new_tokens),
        )
        mc.answers = self.answers
        if log:
            log("search.scorer mc checks prover continuations against the reference answers: an oracle bound")
        return scoring.PrefixScorer(mc)

    def _search(self, prompts, strategy: str, width: int, scorer) -> list[SearchResult]:
        cfg, s, g = self.cfg, self.cfg.search, self.cfg.generation
        if strategy in TREE_SEARCHES:
            return tree_search(
                prompts,
                self.stepper,
                scorer,
                strategy=strategy,
                budget=s.budget,
                width=width,
                max_steps=s.max_steps,
                step_tokens=s.step_tokens,
                max_new_tokens=g.max_new_tokens,
                aggregate=cfg.aggregate,
            )
        return sample_search(prompts, self.stepper, scorer, budget=s.budget, max_new_tokens=g.max_new_tokens)

    def _pick(self, cands: list[Candidate], strategy: str) -> int:
        """The candidate a strategy answers with: the best-scored one, or for weighted_bon the
        weighted vote's winner (weights: the scores, or their sigmoid when any lies outside [0, 1])."""
        scores = [c.score(self.cfg.aggregate) for c in cands]
        best = max(range(len(cands)), key=lambda i: (scores[i], -i))
        if strategy != "weighted_bon":
            return best
        if self.verifier is None:
            raise ValueError("an adaptive search choosing weighted_bon needs a verifier to group the answers")
        texts = [self.tok.decode(c.tokens, skip_special_tokens=True) for c in cands]
        [groups] = self.verifier.group_answers([texts])
        problem = ProblemResult(correct=[False] * len(cands), labels=list(groups.labels), scores=scores)
        vote_weights([problem])  # the report's weighting: the scores, or their sigmoid outside [0, 1]
        pick = vote_winner(problem.labels, problem.weights, range(len(cands)))
        return best if pick is None else pick

    def _adaptive(self, prompts) -> tuple[list[SearchResult], list[dict]]:
        """Each problem's difficulty bin picks its run (strategy, width and step scorer); one search
        per run over its problems."""
        from pipeline.evaluate.allocation import assign, question_values

        bins = assign(1.0 - question_values(self.difficulty, prompts), self.allocation["edges"])
        choices = [self.allocation["choices"].get(str(int(b))) or self._fallback for b in bins]
        results: list = [None] * len(prompts)
        for run in {c["run"]: c for c in choices}.values():
            mine = [i for i, c in enumerate(choices) if c["run"] == run["run"]]
            width = run.get("beam_width") or self.cfg.search.beam_width
            scorer = self.scorer_for(run.get("scorer", "pav"))
            found = self._search([prompts[i] for i in mine], run["strategy"], width, scorer)
            for i, r in zip(mine, found, strict=True):
                results[i] = r
        return results, [dict(c, bin=int(b)) for c, b in zip(choices, bins)]

    def generate(self, problems) -> list[dict]:
        from data.formats import prompt_messages
        from pipeline.models.policy import encode_prompt

        cfg, s, tok = self.cfg, self.cfg.search, self.tok
        prompts = [
            encode_prompt(tok, prompt_messages(p.question, cfg.instruction, cfg.system_prompt)) for p in problems
        ]
        for p, ids in zip(problems, prompts):
            self.questions[tuple(ids)], self.answers[tuple(ids)] = p.question, str(p.answer)
        for scorer in self._scorers.values():
            if hasattr(scorer, "reset"):
                scorer.reset()
        if s.strategy == "adaptive":
            results, chosen = self._adaptive(prompts)
            for r, c in zip(results, chosen):
                r.candidates = [r.candidates[self._pick(r.candidates, c["strategy"])]]
        else:
            results, chosen = self._search(prompts, s.strategy, s.beam_width, self.scorer), [None] * len(prompts)
        rows = []
        for p, r, c in zip(problems, results, chosen, strict=True):
            cands = r.candidates
            rows.append(
                {
                    "benchmark": p.benchmark,
                    "id": p.id,
                    "question": p.question,
                    "answer": p.answer,
                    "responses": [tok.decode(c.tokens, skip_special_tokens=True) for c in cands],
                    "tokens": [len(c.tokens) for c in cands],
                    "truncated": [not c.tokens or c.tokens[-1] not in self.stepper.eos for c in cands],
                    "scores": [c.score(cfg.aggregate) for c in cands],
                    "step_scores": [c.steps for c in cands],
                    "search": {
                        "strategy": s.strategy,
                        "generated_tokens": r.generated_tokens,
                        "continuations": r.continuations,
                        "scorer_seconds": round(r.scorer_seconds, 4),
                        "scorer_tokens": round(r.scorer_tokens, 1),
                        **({"chosen": c["run"], "bin": c["bin"], "scorer": c.get("scorer", "pav")} if c else {}),
                    },
                }
            )
        self.questions.clear()
        self.answers.clear()
        return rows
