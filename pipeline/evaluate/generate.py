"""Generate N responses per benchmark problem, resumably.

Responses go to ``OUT/generations/<benchmark>.jsonl``, one line per problem::

    {"benchmark", "id", "question", "answer", "responses": [str] * n, "tokens": [int] * n}

(plus ``responses_t2`` / ``tokens_t2``, the second attempts, with ``second_attempt``)

written a chunk of problems at a time and fsync'd, so a killed run loses at most
the chunk in flight; a re-run skips the problems already there. The file
carries no settings, so ``OUT/generations/settings.json`` records the ones that
shape the responses (model, prompt, sampling) and a resume with different ones
is refused rather than mixing two runs in one file.
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Callable, Sequence
from pathlib import Path

from data.benchmarks import EvalProblem
from data.formats import prompt_messages
from data.io import read_jsonl, write_json, write_jsonl
from pipeline.config import ConfigError


def _settings(cfg) -> dict:
    g = cfg.generation
    return {
        "model": cfg.model.path,
        "gguf_file": cfg.model.gguf_file,
        "instruction": cfg.instruction,
        "system_prompt": cfg.system_prompt,
        "n": g.n,
        "temperature": g.temperature,
        "top_p": g.top_p,
        "max_new_tokens": g.max_new_tokens,
        "seed": cfg.seed,
        "second_attempt": second_instruction(cfg),
        **({"search": dataclasses.asdict(cfg.search)} if cfg.search.strategy else {}),
    }


def second_instruction(cfg) -> str | None:
    """The second-attempt instruction (``second_attempt: default`` is the training default's)."""
    if cfg.second_attempt == "default":
        from pipeline.config import SelfCorrectionConfig

        return SelfCorrectionConfig().instruction
    return cfg.second_attempt or None


def check_resumable(cfg, gen_dir: Path) -> None:
    """Refuse to append to generations made with other settings."""
    path = gen_dir / "settings.json"
    now = _settings(cfg)
    if path.is_file():
        try:
            before = json.loads(path.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise ConfigError(f"{path} is corrupt; delete {gen_dir} to start the generations over") from None
        diff = sorted(k for k in now if before.get(k) != now[k])
        if diff:
            raise ConfigError(
                f"{gen_dir} holds generations made with other settings ({', '.join(diff)} differ); "
                "choose another --out, or delete that directory to start over"
            )
    else:
        write_json(path, now)


def read_done(path: Path) -> list[dict]:
    """The complete lines of a generations file. A torn last line (a killed run)
    is dropped, and a file that does not end in a newline is rewritten so that the
    next append starts on a line of its own."""
    if not path.is_file():
        return []
    bad: list[int] = []
    rows = [r for _, r in read_jsonl(path, on_error=lambda n, msg: bad.append(n))]
    with path.open("rb") as f:
        f.seek(0, 2)
        unterminated = f.tell() > 0 and (f.seek(-1, 2) or f.read(1) != b"\n")
    if bad or unterminated:
        write_jsonl(path, rows)
    return rows


class Generator:
    """Model + tokenizer + rollout backend for evaluation (built once for all benchmarks)."""

    def __init__(self, cfg):
        import torch

        from pipeline.models.policy import load_policy, load_tokenizer
        from pipeline.models.rollout import HFRollout, VLLMRollout

        self.cfg = cfg
        if cfg.threads:
            torch.set_num_threads(cfg.threads)
        torch.manual_seed(cfg.seed)
        g = cfg.generation
        if g.backend == "vllm":
            self.tokenizer = load_tokenizer(cfg.model.path, cfg.model.gguf_file)
            self.rollout = VLLMRollout(cfg.model.path, gpu_memory_utilization=g.gpu_memory_utilization, seed=cfg.seed)
        else:
            model, self.tokenizer = load_policy(
                cfg.model.path, gguf_file=cfg.model.gguf_file, device=cfg.model.device, dtype=cfg.model.dtype
            )
            self.rollout = HFRollout(model, self.tokenizer, g.max_batch)

    def generate(self, problems: Sequence[EvalProblem]) -> list[dict]:
        from pipeline.models.policy import encode_prompt
        from pipeline.models.rollout import Sampling

        cfg, g, tok = self.cfg, self.cfg.generation, self.tokenizer
        sampling = Sampling(g.temperature, g.top_p, g.max_new_tokens)
        chats = [prompt_messages(p.question, cfg.instruction, cfg.system_prompt) for p in problems]
        groups = self.rollout.generate([encode_prompt(tok, c) for c in chats], g.n, sampling)
        eos = getattr(self.rollout, "eos_ids", {tok.eos_token_id})
        rows = [
            {
                "benchmark": p.benchmark,
                "id": p.id,
                "question": p.question,
                "answer": p.answer,
                "responses": [tok.decode(t, skip_special_tokens=True) for t in grp],
                "tokens": [len(t) for t in grp],
                "truncated": [not t or t[-1] not in eos for t in grp],
            }
            for p, grp in zip(problems, groups)
        ]
        instruction = second_instruction(cfg)
        if instruction:  # self-correction: one second attempt per response, after the instruction
            from pipeline.models.rollout import generate_second_attempts

            convs = [chat for chat, row in zip(chats, rows) for _ in row["responses"]]
            _, flat = generate_second_attempts(
                self.rollout, tok, convs, [t for r in rows for t in r["responses"]], instruction, sampling
            )
            for i, row in enumerate(rows):
                mine = flat[i * g.n : (i + 1) * g.n]
                row["responses_t2"] = [tok.decode(t, skip_special_tokens=True) for t in mine]
                row["tokens_t2"] = [len(t) for t in mine]
        return rows


def generate_benchmark(
    generator: Generator,
    problems: Sequence[EvalProblem],
    path: Path,
    *,
    chunk: int = 16,
    progress: Callable[[int], None] | None = None,
) -> list[dict]:
    """Responses for every problem, resuming from ``path``; returns all rows in problem order."""
    done = {(r.get("benchmark"), str(r.get("id"))): r for r in read_done(path)}
    for p in problems:
        r = done.get((p.benchmark, p.id))
        if r is not None and (r.get("question") != p.question or str(r.get("answer")) != str(p.answer)):
            raise ConfigError(
                f"{path} holds a different problem under {p.benchmark}/{p.id}; the benchmark file "
                "changed since these generations were made: choose another --out"
            )
    todo = [p for p in problems if (p.benchmark, p.id) not in done]
    if progress:
        progress(len(problems) - len(todo))
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a", encoding="utf-8") as f:
        for s in range(0, len(todo), chunk):
            rows = generator.generate(todo[s : s + chunk])
            for r in rows:
                f.write(json.dumps(r, ensure_ascii=False) + "\n")
                done[(r["benchmark"], r["id"])] = r
            f.flush()
            os.fsync(f.fileno())
            if progress:
                progress(len(rows))
    return [done[(p.benchmark, p.id)] for p in problems]
