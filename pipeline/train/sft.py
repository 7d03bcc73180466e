"""Supervised fine-tuning on worked solutions: the warm-up before RL, and the
same-compute supervised control the demo compares RL against.

The loss is the mean negative log-likelihood of the target tokens (the
solution plus EOS), prompt tokens masked out; verl's ``agg_loss`` aggregates it
so the supervised and RL losses share one definition of "token mean".
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch

from data.formats import RLRow
from pipeline.models.policy import encode_prompt, make_batch, response_logprobs


@dataclass
class SFTExample:
    prompt_ids: list[int]
    target_ids: list[int]


def sft_examples(rows: Sequence[RLRow], tokenizer) -> list[SFTExample]:
    """Rows with a ``solution`` -> tokenised (prompt, solution + EOS) pairs."""
    out = []
    eos = tokenizer.eos_token_id
    for r in rows:
        if not r.solution:
            continue
        target = tokenizer(r.solution, add_special_tokens=False)["input_ids"] + [eos]
        out.append(SFTExample(encode_prompt(tokenizer, r.messages), target))
    return out


def lr_factor(step: int, total: int, warmup: int, schedule: str) -> float:
    """Multiplier on the base learning rate at ``step`` (0-based)."""
    if warmup and step < warmup:
        return (step + 1) / warmup
    if schedule == "constant":
        return 1.0
    if schedule == "cosine":
        span = max(1, total - warmup)
        return 0.5 * (1 + math.cos(math.pi * min(1.0, (step - warmup) / span)))
    if schedule == "linear":
        return max(0.0, 1 - (step - warmup) / max(1, total - warmup))
    raise ValueError(f"unknown lr schedule {schedule!r}; choose constant, cosine or linear")


def sft_loss(model, batch) -> torch.Tensor:
    from verl.trainer.ppo.core_algos import agg_loss

    logp, _ = response_logprobs(model, batch)
    return agg_loss(-logp, batch.response_mask, "token-mean")


def train_sft(
    model,
    tokenizer,
    examples: Sequence[SFTExample],
    *,
    steps: int,
    batch_size: int = 32,
    lr: float = 1e-3,
    schedule: str = "cosine",
    warmup_steps: int = 0,
    weight_decay: float = 0.0,
    grad_clip: float = 1.0,
    seed: int = 0,
    on_step: Callable[[int, dict], None] | None = None,
) -> list[dict]:
    """``steps`` AdamW updates on shuffled mini-batches; returns per-step metrics."""
    if not examples:
        raise ValueError("no supervised examples (rows need extra_info.solution)")
    rng = random.Random(seed)
    device = next(model.parameters()).device
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay, betas=(0.9, 0.95))
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: lr_factor(s, steps, warmup_steps, schedule))
    order: list[int] = []
    history = []
    model.train()
    for step in range(steps):
        t0 = time.perf_counter()
        if len(order) < batch_size:
            more = list(range(len(examples)))
            rng.shuffle(more)
            order.extend(more)
        idx, order = order[:batch_size], order[batch_size:]
        batch = make_batch(
            [examples[i].prompt_ids for i in idx], [examples[i].target_ids for i in idx], tokenizer.pad_token_id
        ).to(device)
        loss = sft_loss(model, batch)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        gnorm = torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
        opt.step()
        sched.step()
        m = {
            "step": step + 1,
            "loss": float(loss.detach()),
            "grad_norm": float(gnorm),
            "lr": sched.get_last_lr()[0],
            "step_time": time.perf_counter() - t0,
        }
        history.append(m)
        if on_step:
            on_step(step + 1, m)
    return history


def run_warmup(cfg, out, *, log: Callable[[str], None] | None = None, progress: bool = True) -> dict:
    """``rl-pipeline warmup``: supervised fine-tuning on the rows' worked
    solutions, from ``cfg.model.path`` or (when empty) a freshly built tiny model.

    Writes ``out/model`` (loadable by path), ``out/metrics.jsonl`` and
    ``out/summary.json`` with held-out pass@1 before and after.
    """
    import sys
    from pathlib import Path

    from data.formats import read_rl_rows
    from data.io import write_json
    from pipeline.config import ConfigError, to_dict
    from pipeline.models.policy import load_policy, pick_device, save_policy
    from pipeline.models.tiny_model import build_model, build_tokenizer
    from pipeline.train.heldout import heldout_accuracy
    from pipeline.train.metrics import MetricsLogger
    from rewards.verifier import Verifier

    log = log or (lambda m: print(f"[warmup] {m}", file=sys.stderr, flush=True))
    if not cfg.data.train_files:
        raise ConfigError("data.train_files is required (verl-schema rows with extra_info.solution)")
    out = Path(out)
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed)
    rows = read_rl_rows(cfg.data.train_files)
    heldout = read_rl_rows(cfg.data.heldout_files, limit=cfg.data.heldout_limit) if cfg.data.heldout_files else []
    if cfg.model.path:
        model, tok = load_policy(
            cfg.model.path, gguf_file=cfg.model.gguf_file, device=cfg.model.device, dtype=cfg.model.dtype
        )
    else:
        texts = [m["content"] for r in rows for m in r.messages] + [r.solution for r in rows if r.solution]
        tok = build_tokenizer(texts)
        model = build_model(tok, cfg.tiny_size, seed=cfg.seed).to(pick_device(cfg.model.device))
        log(
            f"built a {cfg.tiny_size} Llama ({sum(p.numel() for p in model.parameters()) / 1e6:.2f}M parameters, "
            f"vocab {len(tok)}) from scratch"
        )
    examples = sft_examples(rows, tok)
    if not examples:
        raise ConfigError("no training row has extra_info.solution: the warm-up needs worked solutions")
    metrics = MetricsLogger(out)
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=cfg.steps, desc="warmup", unit="step", file=sys.stderr, dynamic_ncols=True, mininterval=1.0)

    def on_step(step: int, m: dict) -> None:
        metrics.log(step, m)
        if bar is not None:
            bar.update(1)
            bar.set_postfix(loss=f"{m['loss']:.3f}")

    t0 = time.perf_counter()
    o = cfg.optim
    train_sft(
        model,
        tok,
        examples,
        steps=cfg.steps,
        batch_size=cfg.batch_size,
        lr=o.lr,
        schedule=o.schedule,
        warmup_steps=o.warmup_steps,
        weight_decay=o.weight_decay,
        grad_clip=o.grad_clip,
        seed=cfg.seed,
        on_step=on_step,
    )
    if bar is not None:
        bar.close()
    metrics.close()
    seconds = time.perf_counter() - t0
    summary = {
        "examples": len(examples),
        "steps": cfg.steps,
        "seconds": round(seconds, 2),
        "parameters": sum(p.numel() for p in model.parameters()),
    }
    if heldout:
        with Verifier(workers=1) as v:
            r = heldout_accuracy(
                model,
                tok,
                heldout,
                v,
                samples=cfg.heldout_samples,
                seed=cfg.seed,
                temperature=cfg.heldout_temperature,
                max_new_tokens=cfg.max_new_tokens,
            )
            g = heldout_accuracy(model, tok, heldout, v, temperature=0, max_new_tokens=cfg.max_new_tokens)
        summary.update(heldout_acc=r["acc"], heldout_acc_greedy=g["acc"])
        log(f"held-out pass@1: {r['acc']:.3f} at temperature {cfg.heldout_temperature}, {g['acc']:.3f} greedy")
    save_policy(model, tok, out / "model")
    write_json(out / "config.json", to_dict(cfg))
    write_json(out / "summary.json", summary)
    log(f"{cfg.steps} steps in {seconds:.0f} s; model saved to {out / 'model'}")
    return summary
