"""A generative verifier (GenRM, Zhang et al. 2024, arXiv 2408.15240): a causal LM rates a
solution by the probability that it answers "Yes" to "Is the answer correct?".

Direct mode: the chat holds the question and the solution, then the verification question;
the score is ``p(Yes) / (p(Yes) + p(No))`` of the assistant's first token. With
``rationales = K`` (GenRM-CoT), the model first writes K sampled verification rationales
("Let's verify step by step."), each followed by the verification question, and the score
is the mean of the K ``p(Yes)``: majority voting over its own verifications, soft.

The solution is model output, so it is tokenized as text (special-token strings in it
cannot close a turn) and cut from the front when too long (its end holds the answer).
Usable as best-of-N scorer (``evaluate --genrm``) and, on partial solutions, as a step scorer.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from pipeline.models.policy import PolicyLoadError, load_policy

QUESTION = "Is the answer correct (Yes/No)?"
RATIONALE_CUE = "Let's verify step by step."
_SLOT = "\u2063SOLUTION\u2063"  # stands in for the solution while the chat template is rendered


class GenerativeVerifier:
    def __init__(
        self,
        path: str,
        *,
        gguf_file: str | None = None,
        device: str = "auto",
        rationales: int = 0,
        rationale_tokens: int = 256,
        temperature: float = 0.7,
        max_tokens: int = 4096,
        batch_size: int = 8,
        seed: int = 0,
    ):
        if rationales < 0 or rationale_tokens < 1 or max_tokens < 16 or batch_size < 1:
            raise ValueError("rationales >= 0, rationale_tokens >= 1, max_tokens >= 16 and batch_size >= 1")
        self.model, self.tok = load_policy(path, gguf_file=gguf_file, device=device)
        self.model.eval()
        self.path, self.rationales, self.rationale_tokens = path, rationales, rationale_tokens
        self.temperature, self.max_tokens, self.batch_size, self.seed = temperature, max_tokens, batch_size, seed
        self.yes, self.no = self._first_token("Yes"), self._first_token("No")
        if self.yes == self.no:
            raise PolicyLoadError(f"generative verifier {path!r}: 'Yes' and 'No' start with the same token")
        self.last_rationales: list[list[str]] = []  # per pair, the rationales of the last score() call
        self.last_sequences: list[list[int]] = []  # what p(Yes) was read after, pair by pair, rationale by rationale

    def _first_token(self, word: str) -> int:
        """The first token of the answer word as the assistant's turn would start it."""
        return self.tok(word, add_special_tokens=False)["input_ids"][0]

    def _chat(self, question: str, solution: str, ask: str) -> list[int]:
        """Token ids of the verification chat, ready for the assistant's turn."""
        user = f"{question}\n\nSolution:\n{_SLOT}\n\n{ask}"
        if getattr(self.tok, "chat_template", None):
            text = self.tok.apply_chat_template(
                [{"role": "user", "content": user}], add_generation_prompt=True, tokenize=False
            )
        else:
            text = user + "\n"
        head, _, tail = text.partition(_SLOT)
        h = self.tok(head, add_special_tokens=False)["input_ids"]
        t = self.tok(tail, add_special_tokens=False)["input_ids"]
        s = self.tok(solution[-200_000:], add_special_tokens=False, split_special_tokens=True)["input_ids"]
        room = max(1, self.max_tokens - len(h) - len(t) - self.rationale_tokens - 16)
        return h + s[-room:] + t

    @torch.no_grad()
    def _p_yes(self, sequences: Sequence[Sequence[int]]) -> list[float]:
        """p(Yes) / (p(Yes) + p(No)) of the next token after each sequence (left-padded batches)."""
        dev = next(self.model.parameters()).device
        pad = self.tok.pad_token_id
        out: list[float] = []
        for s in range(0, len(sequences), self.batch_size):
            chunk = sequences[s : s + self.batch_size]
            L = max(len(x) for x in chunk)
            ids = torch.full((len(chunk), L), pad, dtype=torch.long)
            mask = torch.zeros_like(ids)
            for i, x in enumerate(chunk):
                ids[i, L - len(x) :] = torch.as_tensor(list(x))
                mask[i, L - len(x) :] = 1
            logits = self.model(input_ids=ids.to(dev), attention_mask=mask.to(dev)).logits[:, -1].float()
            two = torch.log_softmax(logits, -1)[:, [self.yes, self.no]]
            out += torch.softmax(two, -1)[:, 0].cpu().tolist()
        return out

    def score(self, pairs: Sequence[tuple[str, str]]) -> list[float]:
        """One score in [0, 1] per (question, solution)."""
        if not pairs:
            return []
        if not self.rationales:
            self.last_rationales = [[] for _ in pairs]
            self.last_sequences = [self._chat(q, a, QUESTION) for q, a in pairs]
            return self._p_yes(self.last_sequences)
        from pipeline.models.rollout import HFRollout, Sampling

        torch.manual_seed(self.seed)
        prompts = [self._chat(q, a, RATIONALE_CUE) for q, a in pairs]
        groups = HFRollout(self.model, self.tok, max_batch=self.batch_size * self.rationales).generate(
            prompts, self.rationales, Sampling(self.temperature, 1.0, self.rationale_tokens)
        )
        eos = {self.tok.eos_token_id}
        ask = self.tok("\n" + QUESTION + "\n", add_special_tokens=False)["input_ids"]
        seqs, texts = [], []
        for p, group in zip(prompts, groups):
            texts.append([])
            for r in group:
                body = [t for t in r if t not in eos]
                texts[-1].append(self.tok.decode(body, skip_special_tokens=True))
                seqs.append(list(p) + body + ask)
        self.last_rationales, self.last_sequences = texts, seqs
        p_yes = self._p_yes(seqs)
        k = self.rationales
        return [sum(p_yes[i * k : (i + 1) * k]) / k for i in range(len(pairs))]
