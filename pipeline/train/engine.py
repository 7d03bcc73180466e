"""The single-process GRPO engine (CPU or one GPU).

One RL step, top to bottom (:func:`rl_step`):

1. take the next ``prompts_per_step`` prompts and sample K responses each;
2. verify every response and compose the reward terms (``rewards.terms``);
3. turn rewards into per-token advantages with verl's estimator;
4. compute old / reference log-probs where the loss needs them;
5. update the policy with verl's policy loss, in mini/micro-batches.

:func:`train` wraps it with checkpoints every ``save_every`` steps, exact
resume, held-out accuracy, metrics and a progress bar. SIGTERM or SIGUSR1
(Slurm's time-limit warning, preemption, ``scancel``) lets the current step
finish, writes a checkpoint and raises :class:`TrainingStopped`, so a requeued
run resumes where it was stopped.
"""

from __future__ import annotations

import contextlib
import copy
import random
import signal
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from data.formats import RLRow, read_rl_rows
from data.io import write_json
from pipeline.config import ConfigError, to_dict
from pipeline.models.policy import encode_prompt, load_policy, make_batch, response_logprobs, save_policy
from pipeline.models.prover import TerminationBaseline, leave_one_out
from pipeline.models.rollout import HFRollout, Sampling, VLLMRollout, generate_second_attempts
from pipeline.train import algorithms
from pipeline.train.algorithms import attempt_advantages, termination_advantages
from pipeline.train.checkpoint import latest_checkpoint, load_checkpoint, rng_state, save_checkpoint, set_rng_state
from pipeline.train.config import TrainConfig
from pipeline.train.heldout import eval_seed, heldout_accuracy
from pipeline.train.metrics import MetricsLogger, read_metrics
from pipeline.train.sft import lr_factor
from rewards.self_correction import FIRST, SECOND, attempt_metrics, kl_weights, shaped_reward, turn_scores
from rewards.terms import RolloutScores, compose, outcome_scores


class TrainingStopped(Exception):
    """Training was stopped by a signal after checkpointing ``step``."""

    def __init__(self, step: int, signum: int):
        super().__init__(
            f"stopped by {signal.Signals(signum).name} after step {step}; checkpoint written, "
            "--resume continues from it"
        )
        self.step, self.signum = step, signum


@contextlib.contextmanager
def _stop_requests(signals=(signal.SIGTERM, signal.SIGUSR1)):
    """While active, the listed signals only record themselves (``box[0]``: the first one's number).

    Handlers can only be set from the main thread; elsewhere (a library caller's
    thread) signals keep their usual effect and ``box`` stays empty.
    """
    box: list[int] = []
    if threading.current_thread() is not threading.main_thread():
        yield box
        return
    previous = {s: signal.signal(s, lambda signum, frame: box.append(signum)) for s in signals}
    try:
        yield box
    finally:
        for s, h in previous.items():
            signal.signal(s, h)


class PromptSampler:
    """Prompts in a fresh random order each epoch; its state is two integers and a seed."""

    def __init__(self, n: int, seed: int):
        self.n, self.seed, self.epoch, self.pos = n, seed, 0, 0
        self._order = self._shuffle()

    def _shuffle(self) -> list[int]:
        order = list(range(self.n))
        random.Random(self.seed * 100_003 + self.epoch).shuffle(order)
        return order

    def next(self, k: int) -> list[int]:
        out = []
        while len(out) < k:
            if self.pos >= self.n:
                self.epoch, self.pos = self.epoch + 1, 0
                self._order = self._shuffle()
            take = self._order[self.pos : self.pos + k - len(out)]
            self.pos += len(take)
            out.extend(take)
        return out

    def state_dict(self) -> dict:
        return {"epoch": self.epoch, "pos": self.pos, "seed": self.seed, "n": self.n}

    def load_state_dict(self, s: dict) -> None:
        if s["n"] != self.n:
            raise ConfigError(f"the checkpoint was trained on {s['n']} prompts, the data now has {self.n}")
        self.seed, self.epoch, self.pos = s["seed"], s["epoch"], s["pos"]
        self._order = self._shuffle()


@dataclass
class Engine:
    """Everything a step touches."""

    cfg: TrainConfig
    model: torch.nn.Module
    tokenizer: object
    ref_model: torch.nn.Module | None
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    rollout: object
    verifier: object
    rows: list[RLRow]
    prompts: list[list[int]]
    sampler: PromptSampler
    actor_cfg: object = None
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    progress: object = None  # a ProgressEstimator / PAV predictor when progress rewards are on
    progress_from_policy: bool = False  # the prover samples the policy: its prompt value is the solve rate
    termination: object = None  # a TerminationBaseline when progress.baseline is termination


def draw_groups(draws: int, k: int) -> np.ndarray:
    """Group ids of a step's ``draws * k`` responses: one group per draw, not per
    prompt, so a prompt drawn twice in a step (across an epoch boundary, or more
    prompts per step than the data has) makes two groups of ``k``, not one of 2k."""
    return np.repeat(np.arange(draws), k)


def rl_step(e: Engine) -> dict:
    cfg, tok = e.cfg, e.tokenizer
    K, N = cfg.rollout.n, cfg.rollout.max_new_tokens
    sampling = Sampling(cfg.rollout.temperature, cfg.rollout.top_p, N)
    t0 = time.perf_counter()

    # 1. rollouts: K responses for each of this step's prompts
    idx = e.sampler.next(cfg.prompts_per_step)
    prompts = [e.prompts[i] for i in idx]
    groups = e.rollout.generate(prompts, K, sampling)
    responses = [r for g in groups for r in g]
    t_gen = time.perf_counter() - t0

    # 2. rewards: the verifier's verdict, then the configured reward terms
    texts = tok.batch_decode(responses, skip_special_tokens=True)
    gold = [e.rows[i].ground_truth for i in idx for _ in range(K)]
    scored = _score(e, responses, texts, gold, draw_groups(len(idx), K))
    reward, parts = compose(scored, cfg.reward.terms)
    flat_prompts = [p for p in prompts for _ in range(K)]
    seq_prompts, seq_responses, seq_groups = flat_prompts, responses, scored.group
    kl_weight, extra, attempts, logged_reward = None, {}, None, None

    # 2a. self-correction: a second attempt after the instruction; both attempts are trained
    if cfg.self_correction.enabled:
        sc = cfg.self_correction
        t1 = time.perf_counter()
        convs = [e.rows[i].messages for i in np.repeat(np.asarray(idx), K)]
        second, responses2 = generate_second_attempts(e.rollout, tok, convs, texts, sc.instruction, sampling)
        t_gen += time.perf_counter() - t1
        scored2 = _score(e, responses2, tok.batch_decode(responses2, skip_special_tokens=True), gold, scored.group)
        reward2, _ = compose(scored2, cfg.reward.terms)
        logged_reward = np.concatenate([reward, shaped_reward(sc, reward2, scored.correct, scored2.correct)])
        reward, reward2 = turn_scores(sc, reward, reward2, scored.correct, scored2.correct)
        seq_prompts, seq_responses = flat_prompts + second, responses + responses2
        seq_groups = np.concatenate([scored.group, scored.group])  # attempt_advantages groups (draw, attempt)
        attempts = np.repeat([FIRST, SECOND], len(responses))
        reward = np.concatenate([reward, reward2])
        w = kl_weights(sc, cfg.algorithm.kl_coef, len(responses), len(responses2))
        kl_weight = torch.as_tensor(w, dtype=torch.float32, device=e.device) if w is not None else None
        extra.update(attempt_metrics(scored.correct, scored2.correct))
        extra["response_length_t2"] = float(scored2.response_length.mean())
    batch = make_batch(seq_prompts, seq_responses, tok.pad_token_id).to(e.device)

    # 2b. process rewards: the prover's progress on each step of the (first) attempt, on the step's tokens
    bonus = None
    if e.progress is not None and (cfg.progress.alpha != 0 or e.termination is None):
        known_start = leave_one_out(scored.correct, scored.group) if e.progress_from_policy else None
        pr = e.progress.estimate(flat_prompts, responses, gold, outcomes=scored.correct, start_success=known_start)
        bonus = torch.zeros_like(batch.response_mask)
        bonus[: len(responses)] = torch.as_tensor(pr.bonus(batch.response_mask.shape[1], cfg.progress.alpha)).to(
            e.device
        )
        extra.update(pr.summary())

    # 3. advantages (verl's estimator), per token
    if attempts is not None:
        adv = attempt_advantages(
            cfg.self_correction, cfg.algorithm, reward, attempts, seq_groups, batch.response_mask, token_bonus=bonus
        )
    elif e.termination is not None:  # MRT: continue vs terminate at a random step prefix, then the bonus
        tb = e.termination.estimate(flat_prompts, responses, gold)
        right, wrong = outcome_scores(cfg.reward.terms.get("outcome"))
        scale = algorithms.bonus_scale(cfg.algorithm, reward, batch.response_mask, seq_groups)
        adv = termination_advantages(
            algorithms.compute_advantages(cfg.algorithm, reward, batch.response_mask, seq_groups),
            reward,
            wrong + (right - wrong) * tb.success,
            tb.cuts,
            scale,
            batch.response_mask,
        )
        if bonus is not None:
            adv = (
                adv + torch.as_tensor(scale, dtype=adv.dtype, device=adv.device)[:, None] * bonus * batch.response_mask
            )
        extra.update(tb.summary())
    else:
        adv = algorithms.compute_advantages(cfg.algorithm, reward, batch.response_mask, seq_groups, token_bonus=bonus)

    # 4-5. old/reference log-probs and the policy update
    update = update_policy(e, batch, adv, kl_weight)
    e.scheduler.step()
    e.rollout.sync_weights(e.model)

    correct = scored.correct.astype(float)
    by_group = correct.reshape(-1, K).mean(1)
    gen_tokens = int(sum(len(r) for r in seq_responses))
    return {
        "reward": float((reward if logged_reward is None else logged_reward).mean()),
        "acc": float(correct.mean()),
        **{f"reward/{k}": float(v.mean()) for k, v in parts.items()},
        "groups_mixed": float(((by_group > 0) & (by_group < 1)).mean()),
        "response_length": float(scored.response_length.mean()),
        "response_length_max": int(scored.response_length.max()),
        "truncated": float(scored.truncated.mean()),
        **update,
        **extra,
        "lr": e.scheduler.get_last_lr()[0],
        "step_time": time.perf_counter() - t0,
        "gen_time": t_gen,
        "tokens_per_s": gen_tokens / max(t_gen, 1e-9),
    }


def _score(e: Engine, responses, texts, gold, group) -> RolloutScores:
    """The verifier's verdicts and the lengths the reward terms look at."""
    verdicts = e.verifier.verify_batch(texts, gold)
    eos = set(e.rollout.eos_ids) if hasattr(e.rollout, "eos_ids") else {e.tokenizer.eos_token_id}
    return RolloutScores(
        correct=[v.correct for v in verdicts],
        response_length=[len(r) for r in responses],
        group=group,
        group_size=e.cfg.rollout.n,
        max_response_length=e.cfg.rollout.max_new_tokens,
        truncated=[not r or r[-1] not in eos for r in responses],
    )


def update_policy(e: Engine, batch, adv: torch.Tensor, kl_weight: torch.Tensor | None = None) -> dict:
    """PPO-style epochs over the step's rollouts, mini-batches, micro-batch accumulation.
    ``kl_weight``: per-sequence KL-to-reference weights replacing ``kl_coef``."""
    cfg = e.cfg.algorithm
    ac = e.actor_cfg
    B = len(batch)
    need_old = cfg.ppo_epochs > 1 or cfg.mini_batches > 1
    old_logp = ref_logp = None
    with torch.no_grad():
        if need_old:  # the policy that sampled; with one update per step it equals the current one
            old_logp = _chunked_logprobs(e.model, batch, cfg.micro_batch_size, e.cfg.rollout.temperature)
        if e.ref_model is not None:
            ref_logp = _chunked_logprobs(e.ref_model, batch, cfg.micro_batch_size, e.cfg.rollout.temperature)
    # verl-aggregated terms (pg_loss, kl, entropy): each micro-batch holds its share of the
    # mini-batch value, so they add up per mini-batch; the rest are micro-batch means,
    # averaged with token weights
    shares: dict[str, float] = {}
    means: dict[str, float] = {}
    tokens = 0.0
    updates = 0
    grad_norms = []
    for _ in range(cfg.ppo_epochs):
        perm = torch.randperm(B) if cfg.mini_batches > 1 else torch.arange(B)
        for mb in perm.chunk(cfg.mini_batches):
            algorithms.set_batch_info(ac, batch.response_mask[mb], e.cfg.rollout.max_new_tokens)
            e.optimizer.zero_grad(set_to_none=True)
            for micro in mb.split(cfg.micro_batch_size):
                sub = batch.select(micro)
                logp, ent = response_logprobs(
                    e.model,
                    sub,
                    with_entropy=True,
                    entropy_grad=cfg.entropy_coeff != 0,
                    temperature=e.cfg.rollout.temperature,
                )
                loss, m = algorithms.actor_loss(
                    ac,
                    log_prob=logp,
                    old_log_prob=old_logp[micro] if old_logp is not None else logp.detach(),
                    advantages=adv[micro],
                    response_mask=sub.response_mask,
                    entropy=ent,
                    ref_log_prob=ref_logp[micro] if ref_logp is not None else None,
                    kl_weight=kl_weight[micro] if kl_weight is not None else None,
                )
                loss.backward()
                w = float(sub.response_mask.sum())
                for k, v in m.items():
                    if k in algorithms.SHARE_METRICS:
                        shares[k] = shares.get(k, 0.0) + v
                    else:
                        means[k] = means.get(k, 0.0) + v * w
                tokens += w
            updates += 1
            grad_norms.append(float(torch.nn.utils.clip_grad_norm_(e.model.parameters(), e.cfg.optim.grad_clip)))
            e.optimizer.step()
    out = {k: v / max(tokens, 1.0) for k, v in means.items()}
    out.update({k: v / updates for k, v in shares.items()})  # mean over mini-batch updates
    out["grad_norm"] = float(np.mean(grad_norms))
    return out


@torch.no_grad()
def _chunked_logprobs(model, batch, size: int, temperature: float = 1.0) -> torch.Tensor:
    parts = [
        response_logprobs(model, batch.select(ix), temperature=temperature)[0]
        for ix in torch.arange(len(batch)).split(size)
    ]
    return torch.cat(parts)


def _evaluate(e: Engine, heldout: list[RLRow], step: int) -> dict:
    cfg = e.cfg
    # a private RNG stream: evaluating never changes what training samples next
    r = heldout_accuracy(
        e.model,
        e.tokenizer,
        heldout,
        e.verifier,
        samples=cfg.heldout_samples,
        temperature=cfg.heldout_temperature,
        max_new_tokens=cfg.rollout.max_new_tokens,
        rollout=HFRollout(e.model, e.tokenizer, cfg.rollout.max_batch),
        seed=eval_seed(cfg.seed, step),
        second_instruction=cfg.self_correction.instruction if cfg.self_correction.enabled else None,
    )
    out = {"heldout_acc": r["acc"], "heldout_length": r["mean_tokens"]}
    out.update({f"heldout_{k}": v for k, v in r.items() if k.startswith(("acc_t", "delta"))})
    return out


def _progress_source(cfg: TrainConfig, tok, rollout, verifier, device):
    """What estimates step values: a trained PAV model, or Monte Carlo rollouts of the
    prover (a fixed model, or the policy being trained). Returns (estimator, whether
    the prover is the policy)."""
    from pipeline.models.prover import ProgressEstimator, load_prover

    pc = cfg.progress
    if pc.pav_model:
        from pipeline.models.value_model import PAVPredictor

        return PAVPredictor.load(pc.pav_model, cfg.progress, tokenizer=tok, device=str(device)), False
    prover, from_policy = rollout, True
    if pc.prover_model:
        prover = load_prover(
            pc.prover_model, tok, device=str(device), dtype=cfg.model.dtype, max_batch=cfg.rollout.max_batch
        )
        from_policy = False
    est = ProgressEstimator(
        pc, tok, prover, verifier, max_new_tokens=cfg.rollout.max_new_tokens, top_p=cfg.rollout.top_p
    )
    return est, from_policy


def _check(cfg: TrainConfig) -> None:
    cfg.require_inputs()
    algorithms.validate(cfg.algorithm)


def train(
    cfg: TrainConfig,
    out: str | Path,
    *,
    resume: bool = False,
    progress: bool = True,
    log: Callable[[str], None] | None = None,
    stop_after: int | None = None,
) -> dict:
    """Run (or resume) GRPO; returns the summary also written to ``out/summary.json``.

    ``stop_after``: return after this many steps of this invocation (tests).
    """
    from rewards.verifier import Verifier

    log = log or (lambda m: print(f"[train] {m}", file=sys.stderr, flush=True))
    _check(cfg)
    out = Path(out)
    ckpt_root = out / "checkpoints"
    ckpt = latest_checkpoint(ckpt_root)
    if ckpt is not None and not resume:
        raise ConfigError(f"{out} already holds a run ({ckpt}); pass --resume to continue it or choose another --out")
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    random.seed(cfg.seed)
    np.random.seed(cfg.seed)
    torch.manual_seed(cfg.seed)

    model, tok = load_policy(
        cfg.model.path, gguf_file=cfg.model.gguf_file, device=cfg.model.device, dtype=cfg.model.dtype
    )
    device = next(model.parameters()).device
    ref = None
    sc = cfg.self_correction
    if cfg.algorithm.kl_coef > 0 or (sc.enabled and kl_weights(sc, 0.0, 1, 1) is not None):
        if sc.enabled and sc.reference_model:  # SCoRe's reference: the base model, whatever this run starts from
            ref, ref_tok = load_policy(sc.reference_model, device=cfg.model.device, dtype=cfg.model.dtype)
            if ref_tok.get_vocab() != tok.get_vocab():
                raise ConfigError(
                    f"self_correction.reference_model {sc.reference_model!r} has another tokenizer "
                    f"than model.path {cfg.model.path!r}: the KL compares their token log-probs"
                )
            ref = ref.to(device).eval().requires_grad_(False)
        else:
            ref = copy.deepcopy(model).eval().requires_grad_(False)
    rows = read_rl_rows(cfg.data.train_files)
    prompts = [encode_prompt(tok, r.messages) for r in rows]
    keep = [i for i, p in enumerate(prompts) if len(p) <= cfg.data.max_prompt_tokens]
    if len(keep) < len(rows):
        log(f"skipping {len(rows) - len(keep)} of {len(rows)} prompts longer than {cfg.data.max_prompt_tokens} tokens")
    if not keep:
        raise ConfigError("every training prompt is longer than data.max_prompt_tokens")
    rows, prompts = [rows[i] for i in keep], [prompts[i] for i in keep]
    heldout = read_rl_rows(cfg.data.heldout_files, limit=cfg.data.heldout_limit) if cfg.data.heldout_files else []

    o = cfg.optim
    optimizer = torch.optim.AdamW(model.parameters(), lr=o.lr, weight_decay=o.weight_decay)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: lr_factor(s, cfg.steps, o.warmup_steps, o.schedule)
    )
    if cfg.rollout.backend == "vllm":
        rollout = VLLMRollout(cfg.model.path, gpu_memory_utilization=cfg.rollout.gpu_memory_utilization, seed=cfg.seed)
    else:
        rollout = HFRollout(model, tok, cfg.rollout.max_batch)
    sampler = PromptSampler(len(rows), cfg.seed)

    start = 0
    if ckpt is not None:
        state = load_checkpoint(ckpt)
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        sampler.load_state_dict(state["sampler"])
        set_rng_state(state["rng"])
        if hasattr(rollout, "_calls"):
            rollout._calls = state.get("rollout_calls", 0)
        rollout.sync_weights(model)
        start = state["step"]
        log(f"resuming from {ckpt} (step {start})")
    elif resume:
        log(f"no checkpoint in {ckpt_root}; starting from step 0")
    write_json(out / "config.json", to_dict(cfg))

    metrics = MetricsLogger(out, start)
    t_start = time.perf_counter()
    vcfg = cfg.reward.verifier
    with _stop_requests() as stop, Verifier(workers=vcfg.workers, timeout=vcfg.timeout, mode=vcfg.mode) as verifier:
        e = Engine(
            cfg,
            model,
            tok,
            ref,
            optimizer,
            scheduler,
            rollout,
            verifier,
            rows,
            prompts,
            sampler,
            algorithms.actor_config(cfg.algorithm, cfg.rollout.n),
            device,
        )
        if cfg.progress.enabled:
            e.progress, e.progress_from_policy = _progress_source(cfg, tok, rollout, verifier, device)
            if cfg.progress.baseline == "termination":
                e.termination = TerminationBaseline(
                    cfg.progress, tok, rollout, verifier, top_p=cfg.rollout.top_p, seed=cfg.seed + start
                )
        if start == 0 and heldout:
            m0 = _evaluate(e, heldout, 0)
            metrics.log(0, m0)
            log(
                f"held-out accuracy before training: {m0['heldout_acc']:.3f} ({len(heldout)} prompts x {cfg.heldout_samples})"
            )
        bar = _progress(range(start + 1, cfg.steps + 1), progress, cfg.steps, start)
        done_here = 0
        for step in bar:
            m = rl_step(e)
            last = step == cfg.steps
            if heldout and (last or (cfg.eval_every and step % cfg.eval_every == 0)):
                m.update(_evaluate(e, heldout, step))
            metrics.log(step, m)
            if hasattr(bar, "set_postfix"):
                bar.set_postfix(acc=f"{m['acc']:.2f}", len=f"{m['response_length']:.0f}")
            if step % cfg.save_every == 0 or last or stop:
                save_checkpoint(
                    ckpt_root,
                    step,
                    {
                        "step": step,
                        "model": model.state_dict(),
                        "optimizer": optimizer.state_dict(),
                        "scheduler": scheduler.state_dict(),
                        "sampler": sampler.state_dict(),
                        "rng": rng_state(),
                        "rollout_calls": getattr(rollout, "_calls", 0),
                    },
                    meta={"model_path": cfg.model.path},
                    keep=cfg.keep_checkpoints,
                )
            if stop and not last:
                metrics.close()
                raise TrainingStopped(step, stop[0])
            done_here += 1
            if stop_after is not None and done_here >= stop_after:
                metrics.close()
                return {"stopped_at": step}
    metrics.close()
    save_policy(model, tok, out / "model")
    history = read_metrics(out / "metrics.jsonl")
    evals = [r for r in history if r.get("heldout_acc") is not None]
    summary = {
        "steps": cfg.steps,
        "heldout_acc_before": evals[0]["heldout_acc"] if evals and evals[0]["step"] == 0 else None,
        "heldout_acc_after": evals[-1]["heldout_acc"] if evals and evals[-1]["step"] == cfg.steps else None,
        "train_acc_first": next((r["acc"] for r in history if "acc" in r), None),
        "train_acc_last": history[-1].get("acc"),
        "seconds_this_run": round(time.perf_counter() - t_start, 2),
        "mean_step_time": float(np.mean([r["step_time"] for r in history if "step_time" in r])),
        "model": str(out / "model"),
    }
    write_json(out / "summary.json", summary)
    return summary


def _progress(it, enabled: bool, total: int, start: int):
    if not enabled:
        return it
    from tqdm import tqdm

    return tqdm(
        it, total=total, initial=start, desc="train", unit="step", file=sys.stderr, dynamic_ncols=True, mininterval=1.0
    )
