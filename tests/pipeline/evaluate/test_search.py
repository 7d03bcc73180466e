"""Test-time search (pipeline/evaluate/search.py): on a scripted tree the beam search and DVTS
find the paths a hand trace says they must; budgets are exact; the evaluate stage runs a search
with a real micro model, resumes it and refuses to mix settings."""

from __future__ import annotations

import copy
import json

import pytest

from pipeline.config import ConfigError, ProgressConfig, load_config
from pipeline.evaluate.config import EvalConfig
from pipeline.evaluate.scoring import PAVStepScorer, PrefixScorer
from pipeline.evaluate.search import Stepper, sample_search, tree_search
from pipeline.models.prover import StepSegmenter
from tests.pipeline.evaluate.test_evaluate import run


@pytest.fixture(scope="module")
def tok(task_files):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(task_files["model"])


class ScriptedTree:
    """A rollout backend over a fixed tree: the text written so far picks a node, whose options
    are handed out in turn (a second visit gets the next ones), each as token ids; an option
    ending in "$" is a finished answer (EOS). Records the continuations asked for per call."""

    def __init__(self, tok, tree: dict[str, list[str]]):
        self.tok, self.tree, self.turn, self.calls = tok, tree, {}, []
        self.marker = tok.convert_tokens_to_ids("<|assistant|>")
        self.eos_ids = {tok.eos_token_id}

    def sync_weights(self, model) -> None:
        pass

    def _written(self, ids) -> str:
        pos = len(ids) - 1 - ids[::-1].index(self.marker)
        return self.tok.decode(ids[pos + 1 :], skip_special_tokens=True)

    def generate(self, prompts, n, sampling):
        self.calls.append((len(prompts) * n, sampling.max_new_tokens, sampling.stop))
        out = []
        for p in prompts:
            written = self._written(list(p))
            options = self.tree[written]
            start = self.turn.get(written, 0)
            self.turn[written] = start + n
            group = []
            for j in range(n):
                text = options[(start + j) % len(options)]
                ids = self.tok(text.rstrip("$"), add_special_tokens=False)["input_ids"]
                group.append((ids + [self.tok.eos_token_id] if text.endswith("$") else ids)[: sampling.max_new_tokens])
            out.append(group)
        return out


# each line is a step; the score of a path is the number after its last "=" (scripted verifier)
TREE = {
    "": ["b=0.1\n", "a=0.9\n", "d=0.2\n", "c=0.8\n"],
    "a=0.9\n": ["a2=0.2\n", "a1=0.3$"],
    "c=0.8\n": ["c2=0.5\n", "c1=0.95$"],
    "c=0.8\nc2=0.5\n": ["c2x=0.4$", "c2y=0.6$"],
    "a=0.9\na2=0.2\n": ["a2x=0.1$", "a2y=0.15$"],
}


def scripted_scorer(tok):
    def rate(prompts, prefixes):
        texts = [tok.decode(list(x), skip_special_tokens=True) for x in prefixes]
        return [float(t.strip().split("\n")[-1].split("=")[-1]) for t in texts]

    return PrefixScorer(rate)


def _prompt(tok):
    from pipeline.models.policy import encode_prompt

    return encode_prompt(tok, [{"role": "user", "content": "pick a path"}])


def _search(tok, strategy, tree=TREE, **kw):
    rollout = ScriptedTree(tok, tree)
    segment = StepSegmenter(ProgressConfig(max_steps=10_000), tok)
    stepper = Stepper(rollout, segment, rollout.eos_ids, temperature=1.0, top_p=1.0, stop=("\n",))
    opts = dict(budget=4, width=2, max_steps=6, step_tokens=32, max_new_tokens=64) | kw
    [res] = tree_search([_prompt(tok)], stepper, scripted_scorer(tok), strategy=strategy, **opts)
    texts = [tok.decode(c.tokens, skip_special_tokens=True) for c in res.candidates]
    return res, texts, rollout


def test_beam_search_finds_the_best_path_behind_a_weaker_first_step(tok):
    res, texts, _ = _search(tok, "beam")
    # depth 0: a (0.9) and c (0.8) kept; depth 1: c1 (0.95, done) and c2 (0.5) beat a1 (0.3) and a2;
    # depth 2: one slot left, c2y (0.6) takes it
    assert texts == ["c=0.8\nc1=0.95", "c=0.8\nc2=0.5\nc2y=0.6"]
    best = max(res.candidates, key=lambda c: c.score("last"))
    assert tok.decode(best.tokens, skip_special_tokens=True) == "c=0.8\nc1=0.95"
    assert [c.steps for c in sorted(res.candidates, key=lambda c: len(c.steps))] == [[0.8, 0.95], [0.8, 0.5, 0.6]]
    assert res.continuations == [4, 4, 2]


def test_dvts_keeps_one_path_per_subtree(tok):
    res, texts, _ = _search(tok, "dvts")
    # subtree 0 drew b and a, subtree 1 d and c: each follows its own best, a -> a1 and c -> c1
    assert texts == ["a=0.9\na1=0.3", "c=0.8\nc1=0.95"]
    assert res.continuations == [4, 4]


def test_min_aggregation_changes_the_beam(tok):
    # with min, c2y's path scores 0.5 and a2's 0.2: the same survivors, but c1's 0.8 leads
    res, _, _ = _search(tok, "beam", aggregate="min")
    assert sorted(c.score("min") for c in res.candidates) == [0.5, 0.8]


def test_budgets_are_exact_and_every_sampled_token_is_counted(tok):
    res, texts, rollout = _search(tok, "beam", max_steps=2)
    asked = [n for n, _, _ in rollout.calls]
    assert asked[0] == 4 and all(n <= 4 for n in asked)  # N continuations per step, never more
    assert len(res.candidates) == 2  # N / M candidates
    # max_steps 2: the second step completes the open beams (no stop string, the rest of the budget)
    assert rollout.calls[-1][2] == () and rollout.calls[0][2] == ("\n",)
    assert all(c.done for c in res.candidates)
    sampled = 0
    for written, options in TREE.items():
        for j in range(rollout.turn.get(written, 0)):
            text = options[j % len(options)]
            sampled += len(tok(text.rstrip("$"), add_special_tokens=False)["input_ids"]) + text.endswith("$")
    assert res.generated_tokens == sampled
    with pytest.raises(ValueError, match="multiple of the beam width"):
        _search(tok, "beam", budget=5)


def test_a_sampling_scorers_tokens_are_charged_to_the_problems_it_rated(tok):
    class CountingRate:  # a rater that "samples" 3 tokens per prefix it rates, as the mc rater counts its own
        def __init__(self):
            self.sampled_tokens = 0
            self.inner = scripted_scorer(tok).rate

        def __call__(self, prompts, prefixes):
            self.sampled_tokens += 3 * len(prefixes)
            return self.inner(prompts, prefixes)

    rate = CountingRate()
    scorer = PrefixScorer(rate)
    rollout = ScriptedTree(tok, TREE)
    stepper = Stepper(
        rollout,
        StepSegmenter(ProgressConfig(max_steps=10_000), tok),
        rollout.eos_ids,
        temperature=1.0,
        top_p=1.0,
        stop=("\n",),
    )
    opts = dict(budget=4, width=2, max_steps=6, step_tokens=32, max_new_tokens=64)
    [res] = tree_search([_prompt(tok)], stepper, scorer, strategy="beam", **opts)
    assert (
        rate.sampled_tokens > 0 and res.scorer_tokens == rate.sampled_tokens
    )  # one problem: all of it, cache misses only
    assert scorer.sampled_tokens == rate.sampled_tokens
    rate = CountingRate()
    [res] = sample_search([_prompt(tok)], stepper, PrefixScorer(rate), budget=4, max_new_tokens=64)
    prefixes = {tuple(c.tokens[:e]) for c in res.candidates for e in stepper.segment(c.tokens)}
    assert res.scorer_tokens == rate.sampled_tokens == 3 * len(prefixes) > 0


def test_a_path_never_outgrows_the_token_budget(tok):
    long = {"": ["x=0.5\n"] * 4, "x=0.5\n": ["y=0.5\n"], "x=0.5\ny=0.5\n": ["z=0.5\n"]}
    res, _, rollout = _search(tok, "beam", tree=long, max_new_tokens=12, max_steps=10)
    assert all(len(c.tokens) <= 12 for c in res.candidates) and all(c.done for c in res.candidates)
    assert all(room <= 12 for _, room, _ in rollout.calls)


def test_sample_search_scores_every_step_of_each_sample(tok):
    flat = {"": ["p=0.2\nq=0.7$", "r=0.9\ns=0.1$"]}
    rollout = ScriptedTree(tok, flat)
    segment = StepSegmenter(ProgressConfig(max_steps=10_000), tok)
    stepper = Stepper(rollout, segment, rollout.eos_ids, temperature=1.0, top_p=1.0)
    [res] = sample_search([_prompt(tok)], stepper, scripted_scorer(tok), budget=2, max_new_tokens=64)
    assert [c.steps for c in res.candidates] == [[0.2, 0.7], [0.9, 0.1]]
    assert [c.score("last") for c in res.candidates] == [0.7, 0.1]
    assert [c.score("min") for c in res.candidates] == [0.2, 0.1]
    assert rollout.calls == [(2, 64, ())]


def test_pav_step_scorer_is_pavs_step_score_on_the_policys_tokens(task_files, tok, tmp_path):
    from pipeline.models.policy import load_policy
    from pipeline.models.value_model import ValueModel, predict_values, save_value_model, step_scores

    lm, _ = load_policy(str(task_files["model"]))
    model = ValueModel(copy.deepcopy(lm))
    save_value_model(model, tok, tmp_path / "pav", {"split": "lines", "max_steps": 8})
    scorer = PAVStepScorer(str(tmp_path / "pav"), alpha=0.5, tokenizer=tok, device="cpu")
    p = _prompt(tok)
    r = tok("1 + 2 = 3\n3 + 4 = 7\n", add_special_tokens=False)["input_ids"]
    ends = StepSegmenter(ProgressConfig(), tok)(r)
    [got] = scorer([p], [r], [ends])
    [values] = predict_values(scorer.mu, tok.pad_token_id, [p], [r], [ends])
    assert len(got) == len(ends) == 2 and got == pytest.approx(step_scores(values, None, 0.5))


def test_config_errors_name_the_setting(tmp_path):
    def cfg(text):
        path = tmp_path / "e.yaml"
        path.write_text(text)
        return load_config(EvalConfig, path)

    with pytest.raises(ConfigError, match="must be a multiple of search.beam_width"):
        cfg("model: {path: m}\nsearch: {strategy: beam, budget: 6, beam_width: 4, scorer: mc}\n")
    with pytest.raises(ConfigError, match="search.strategy must be one of"):
        cfg("search: {strategy: mcts}\n")
    with pytest.raises(ConfigError, match="scorer pav needs process_verifier"):
        cfg("model: {path: m}\nsearch: {strategy: dvts}\n")
    with pytest.raises(ConfigError, match="cannot be searched"):
        cfg("generations: g.jsonl\nsearch: {strategy: bon, scorer: mc}\n")
    assert cfg("search: {strategy: dvts, budget: 8, beam_width: 2, scorer: mc}\n").search.budget == 8
    with pytest.raises(ConfigError, match="search.scorer must be one of pav, orm, genrm, likelihood, mc"):
        cfg("search: {strategy: beam, scorer: prm}\n")
    assert cfg("model: {path: m}\nsearch: {strategy: beam, scorer: likelihood}\n").search.scorer == "likelihood"
    with pytest.raises(ConfigError, match="adaptive needs process_verifier"):
        cfg("model: {path: m}\nsearch: {strategy: adaptive, scorer: likelihood, allocation: c.json}\n")


@pytest.mark.slow
def test_evaluate_searches_with_a_real_model_resumes_and_refuses_other_settings(task_files, tmp_path):
    out = tmp_path / "beam"
    common = [
        "--model",
        str(task_files["model"]),
        "--benchmarks",
        str(task_files["heldout"]),
        "--temperature",
        "1.0",
        "--max-new-tokens",
        "12",
        "--search",
        "beam",
        "--beam-width",
        "2",
        "--search-scorer",
        "mc",
        "--workers",
        "1",
        "--out",
        str(out),
        "--no-progress",
        "--no-plots",
    ]
    r = run("evaluate", "--budget", "4", *common)
    assert r.returncode == 0, r.stderr
    assert "oracle" in r.stderr  # the mc scorer says it knows the answers
    gen = out / "generations" / "heldout.jsonl"
    rows = [json.loads(x) for x in gen.read_text().splitlines()]
    assert len(rows) == 8
    for row in rows:
        assert len(row["responses"]) == len(row["scores"]) == len(row["step_scores"]) == 2
        assert all(0 < t <= 12 for t in row["tokens"])
        assert row["search"]["continuations"][0] == 4 and all(n <= 4 for n in row["search"]["continuations"])
        assert row["search"]["generated_tokens"] >= max(row["tokens"])
        assert all(0.0 <= s <= 1.0 for steps in row["step_scores"] for s in steps)  # mc values are success rates
        assert row["scores"] == [steps[-1] for steps in row["step_scores"]]  # aggregate last
    rep = json.loads((out / "report.json").read_text())
    assert rep["search"]["pick"] == "bon@2" and rep["search"]["accuracy"] == rep["bon@2"]
    spent = sum(x["search"]["generated_tokens"] for x in rows) / len(rows)
    assert rep["search"]["generated_tokens_per_problem"] == pytest.approx(spent)
    drawn = sum(x["search"]["scorer_tokens"] for x in rows) / len(rows)  # the mc scorer's own continuations
    assert drawn > 0 and rep["search"]["scorer_tokens_per_problem"] == pytest.approx(drawn)
    assert "## Search" in (out / "report.md").read_text()
    assert rep["search"]["scorer_seconds"] == pytest.approx(sum(x["search"]["scorer_seconds"] for x in rows), abs=0.01)

    lines = gen.read_text().splitlines()  # killed mid-line: the re-run searches the rest only
    gen.write_text("\n".join(lines[:3]) + "\n" + lines[3][:20])
    r = run("evaluate", "--budget", "4", *common)
    assert r.returncode == 0, r.stderr
    again = [json.loads(x) for x in gen.read_text().splitlines()]
    assert again[:3] == rows[:3] and sorted(x["id"] for x in again) == sorted(x["id"] for x in rows)

    r = run("evaluate", "--budget", "8", *common)
    assert r.returncode == 2 and "other settings (search differ" in r.stderr


def test_the_weighted_vote_winner_sums_each_answers_weights_and_skips_no_answer():
    from pipeline.evaluate.metrics import vote_winner

    assert vote_winner([0, 1, 1, -1], [0.9, 0.5, 0.5, 5.0], range(4)) == 1  # answer 1 holds 1.0 against 0.9
    assert vote_winner([0, 1, 1], [0.9, 0.4, 0.5], range(3)) == 0  # a tie goes to the answer seen first
    assert vote_winner([-1, -1], [1.0, 1.0], range(2)) is None


def test_likelihood_scorer_is_the_least_likely_step_so_far_under_the_policy(task_files, tok):
    import math

    import torch

    from pipeline.evaluate.scoring import LikelihoodStepScorer
    from pipeline.models.policy import load_policy

    lm, _ = load_policy(str(task_files["model"]))
    scorer = LikelihoodStepScorer(lm, tok.pad_token_id, batch_size=2)
    segment = StepSegmenter(ProgressConfig(), tok)
    p, short = _prompt(tok), tok("7\n", add_special_tokens=False)["input_ids"]
    texts = ["1 + 2 = 3\n3 + 4 = 7\n", "9 - 1 = 8\n", "2 + 2 = 5\n5 - 1 = 4\n4 + 4 = 8"]
    rs = [tok(t, add_special_tokens=False)["input_ids"] for t in texts]
    ends = [segment(r) for r in rs]
    prompts = [p, p + short, p]  # prompts of other lengths in one batch: left padding must not leak
    got = scorer(prompts, rs, ends)
    for q, r, es, scores in zip(prompts, rs, ends, got, strict=True):
        with torch.no_grad():  # one unpadded forward pass, token by token
            logp = torch.log_softmax(lm(input_ids=torch.tensor([q + r])).logits[0].float(), -1)
        lp = [float(logp[len(q) + t - 1, r[t]]) for t in range(len(r))]
        steps = [math.exp(sum(lp[a:b]) / (b - a)) for a, b in zip([0, *es[:-1]], es)]
        want = [min(steps[: h + 1]) for h in range(len(steps))]
        assert len(scores) == len(es) and scores == pytest.approx(want, rel=1e-4)
        assert all(0 < s <= 1 for s in scores) and scores == sorted(scores, reverse=True)
