"""Training the PAV model (:mod:`pipeline.models.value_model`): a value head on a language
model that predicts the prover's success at every step boundary, so progress can be read off
one forward pass instead of sampled.

``rl-pipeline pav`` (:func:`run_pav`):

1. *seed rollouts*: ``seeds_per_prompt`` responses of the policy per prompt;
2. *labels*: the Monte Carlo prover values at each step boundary
   (:class:`~pipeline.models.prover.ProgressEstimator`, same settings as training);
3. *fit*: a linear head on the LM's last hidden state at each boundary token,
   trained with cross-entropy against the soft labels (the whole LM is tuned);
4. *check*: on a held-out share of the labelled responses, the mean absolute
   error of predicted values and progress, and the correlation with the labels.

The saved directory is the LM (``save_pretrained``), its tokenizer,
``value_head.pt`` and ``pav.json``. :class:`~pipeline.models.value_model.PAVPredictor` loads
it for training (``progress.pav_model``) and :func:`~pipeline.models.value_model.process_scores`
for best-of-N in evaluation.
"""

from __future__ import annotations

import json
import random
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch

from data.formats import read_rl_rows
from data.io import write_json, write_jsonl
from pipeline.config import ConfigError, to_dict
from pipeline.models.policy import encode_prompt, load_policy, pick_device
from pipeline.models.prover import ProgressEstimator, load_prover
from pipeline.models.rollout import HFRollout, Sampling
from pipeline.models.value_model import ValueModel, boundary_positions, predict_values, right_padded, save_value_model
from pipeline.train.config import PAVConfig
from pipeline.train.sft import lr_factor


def collect_labels(cfg: PAVConfig, policy, tok, verifier, log) -> list[dict]:
    """Seed rollouts of the policy and Monte Carlo prover values at their step boundaries."""
    rows = read_rl_rows(cfg.data.train_files, limit=cfg.prompts)
    prompts = [encode_prompt(tok, r.messages) for r in rows]
    rollout = HFRollout(policy, tok)
    prover = rollout
    if cfg.progress.prover_model:
        prover = load_prover(cfg.progress.prover_model, tok, device=cfg.model.device)
    est = ProgressEstimator(cfg.progress, tok, prover, verifier, max_new_tokens=cfg.max_new_tokens)
    K = cfg.seeds_per_prompt
    labels: list[dict] = []
    t0 = time.perf_counter()
    mc = 0
    for s in range(0, len(rows), cfg.chunk):
        chunk = list(range(s, min(len(rows), s + cfg.chunk)))
        groups = rollout.generate([prompts[i] for i in chunk], K, Sampling(cfg.temperature, 1.0, cfg.max_new_tokens))
        flat_p = [prompts[i] for i in chunk for _ in range(K)]
        flat_r = [r for g in groups for r in g]
        gold = [rows[i].ground_truth for i in chunk for _ in range(K)]
        res = est.estimate(flat_p, flat_r, gold)
        mc += res.mc_rollouts
        for j, (p, r, e, v) in enumerate(zip(flat_p, flat_r, res.ends, res.values)):
            if e:
                labels.append(
                    {
                        "prompt_ids": list(p),
                        "response_ids": list(r),
                        "ends": e,
                        "values": v.tolist(),
                        "group": chunk[j // K],
                    }
                )
        log(
            f"labelled {min(len(rows), s + cfg.chunk)}/{len(rows)} prompts ({mc} prover rollouts, "
            f"{time.perf_counter() - t0:.0f}s)"
        )
    return labels


def fit(model: ValueModel, labels: Sequence[dict], cfg: PAVConfig, pad: int, log) -> list[float]:
    """Cross-entropy of the predicted success against the soft labels at every boundary."""
    dev = next(model.parameters()).device
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.optim.lr, weight_decay=cfg.optim.weight_decay)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: lr_factor(s, cfg.steps, cfg.optim.warmup_steps, cfg.optim.schedule)
    )
    rng = random.Random(cfg.seed)
    losses = []
    model.train()
    for step in range(cfg.steps):
        batch = [labels[rng.randrange(len(labels))] for _ in range(cfg.batch_size)]
        ids, mask = right_padded([b["prompt_ids"] + b["response_ids"] for b in batch], pad)
        logits = model(ids.to(dev), mask.to(dev))
        rows_, cols, target = [], [], []
        for i, b in enumerate(batch):
            pos = boundary_positions(len(b["prompt_ids"]), b["ends"])
            rows_ += [i] * len(pos)
            cols += pos
            target += b["values"]
        picked = logits[torch.as_tensor(rows_), torch.as_tensor(cols)]
        loss = torch.nn.functional.binary_cross_entropy_with_logits(picked, torch.as_tensor(target, device=dev))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.optim.grad_clip)
        opt.step()
        sched.step()
        losses.append(float(loss.detach()))
        if (step + 1) % max(1, cfg.steps // 10) == 0:
            log(f"step {step + 1}/{cfg.steps}: loss {np.mean(losses[-max(1, cfg.steps // 10) :]):.4f}")
    return losses


def check(model: ValueModel, labels: Sequence[dict], pad: int) -> dict:
    """Predicted vs Monte Carlo values and progress on labelled responses."""
    if not labels:
        return {}
    pred = predict_values(
        model, pad, [b["prompt_ids"] for b in labels], [b["response_ids"] for b in labels], [b["ends"] for b in labels]
    )
    v_true = np.concatenate([b["values"] for b in labels])
    v_pred = np.concatenate(pred)
    p_true = np.concatenate([np.diff(b["values"]) for b in labels])
    p_pred = np.concatenate([np.diff(v) for v in pred])
    corr = lambda a, b: float(np.corrcoef(a, b)[0, 1]) if a.std() > 0 and b.std() > 0 else None  # noqa: E731
    return {
        "responses": len(labels),
        "value_mae": float(np.abs(v_true - v_pred).mean()),
        "value_corr": corr(v_true, v_pred),
        "progress_mae": float(np.abs(p_true - p_pred).mean()),
        "progress_corr": corr(p_true, p_pred),
        "progress_sign_agreement": float((np.sign(p_true) == np.sign(np.round(p_pred, 1))).mean()),
    }


def run_pav(cfg: PAVConfig, out: str | Path, *, log: Callable[[str], None] | None = None) -> dict:
    """Label, fit, check and save a PAV model; ``out/labels.jsonl`` is reused when present."""
    from data.io import read_jsonl
    from rewards.verifier import Verifier

    log = log or (lambda m: print(f"[pav] {m}", file=sys.stderr, flush=True))
    if not cfg.model.path:
        raise ConfigError("model.path (the policy whose responses are labelled) is required")
    if not cfg.data.train_files:
        raise ConfigError("data.train_files (prompts to label) is required")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    random.seed(cfg.seed)
    torch.manual_seed(cfg.seed)
    policy, tok = load_policy(cfg.model.path, device=cfg.model.device)
    labels_path = out / "labels.jsonl"
    t0 = time.perf_counter()
    made_with = to_dict(cfg)
    made_with = {
        k: made_with[k]
        for k in ("model", "data", "progress", "prompts", "seeds_per_prompt", "max_new_tokens", "temperature", "seed")
    }
    meta_path = out / "labels.settings.json"
    if labels_path.is_file():
        old = json.loads(meta_path.read_text()) if meta_path.is_file() else None
        if old != json.loads(json.dumps(made_with)):
            raise ConfigError(f"{labels_path} was labelled with other settings; choose another --out or delete it")
        labels = [row for _, row in read_jsonl(labels_path)]
        log(f"reusing {len(labels)} labelled responses from {labels_path}")
    else:
        with Verifier(workers=cfg.verifier_workers) as verifier:
            labels = collect_labels(cfg, policy, tok, verifier, log)
        write_json(meta_path, made_with)
        write_jsonl(labels_path, labels)
    label_time = time.perf_counter() - t0
    if len(labels) < 2:
        raise ConfigError(f"only {len(labels)} responses could be labelled; give more prompts")
    groups = sorted({b["group"] for b in labels})
    random.Random(cfg.seed).shuffle(groups)
    held = set(groups[: max(1, int(len(groups) * cfg.heldout_share))])
    train_l = [b for b in labels if b["group"] not in held]
    test_l = [b for b in labels if b["group"] in held]
    init = cfg.init or cfg.model.path
    lm, _ = (policy, tok) if init == cfg.model.path else load_policy(init, device=cfg.model.device)
    model = ValueModel(lm).to(pick_device(cfg.model.device))
    t1 = time.perf_counter()
    losses = fit(model, train_l, cfg, tok.pad_token_id, log)
    result = {
        "labelled_responses": len(labels),
        "label_seconds": round(label_time, 1),
        "fit_seconds": round(time.perf_counter() - t1, 1),
        "final_loss": float(np.mean(losses[-10:])),
        "heldout": check(model, test_l, tok.pad_token_id),
        "mean_label_value": float(np.mean(np.concatenate([b["values"] for b in labels]))),
    }
    save_value_model(
        model,
        tok,
        out / "model",
        {
            "split": cfg.progress.split,
            "max_steps": cfg.progress.max_steps,
            "prover_k": cfg.progress.prover_k,
            "mode": cfg.progress.mode,
            "policy": cfg.model.path,
            "config": to_dict(cfg),
        },
    )
    write_json(out / "summary.json", result)
    log(f"held-out: {result['heldout']}")
    return result
