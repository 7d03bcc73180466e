"""Small from-scratch policies: a tokenizer trained locally and a random-init Llama.

Nothing here downloads anything. The tokenizer is byte-level BPE trained on the
task's own text, with digits always split into single tokens (arithmetic is
learnable digit by digit) and a minimal chat template, so the same
``apply_chat_template`` path serves these models and hub models alike.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

USER, ASSISTANT, END, PAD = "<|user|>", "<|assistant|>", "<|end|>", "<|pad|>"

CHAT_TEMPLATE = (
    "{% for m in messages %}"
    "{% if m['role'] == 'assistant' %}"
    + ASSISTANT
    + "{{ m['content'] }}"
    + END
    + "{% else %}"
    + USER
    + "{{ m['content'] }}"
    + END
    + "{% endif %}"
    "{% endfor %}"
    "{% if add_generation_prompt %}" + ASSISTANT + "{% endif %}"
)

# name -> (hidden, layers, heads, intermediate)
SIZES = {
    "micro": (32, 2, 2, 64),  # ~30k params with the task vocab: tests
    "tiny": (128, 4, 4, 384),  # ~0.9M
    "small": (192, 6, 6, 576),  # ~2.7M: the demo
}


def build_tokenizer(texts: Iterable[str], vocab_size: int = 384):
    """Train a byte-level BPE (single-digit tokens) on ``texts``."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [pre_tokenizers.Digits(individual_digits=True), pre_tokenizers.ByteLevel(add_prefix_space=False)]
    )
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=[PAD, USER, ASSISTANT, END],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(list(texts), trainer=trainer)
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        eos_token=END,
        pad_token=PAD,
        additional_special_tokens=[USER, ASSISTANT],
        chat_template=CHAT_TEMPLATE,
        padding_side="left",
    )


def build_model(tokenizer, size: str = "tiny", seed: int = 0, max_positions: int = 512):
    """A random-init ``LlamaForCausalLM`` sized by ``size`` (see :data:`SIZES`)."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    if size not in SIZES:
        raise ValueError(f"unknown model size {size!r}; choose one of {sorted(SIZES)}")
    hidden, layers, heads, inter = SIZES[size]
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=hidden,
        intermediate_size=inter,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        num_key_value_heads=heads,
        max_position_embeddings=max_positions,
        tie_word_embeddings=True,
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
        bos_token_id=None,
    )
    torch.manual_seed(seed)
    model = LlamaForCausalLM(config)
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    model.generation_config.bos_token_id = None
    return model


def build_and_save(
    out: str | os.PathLike, texts: Iterable[str], size: str = "tiny", seed: int = 0, vocab_size: int = 384
) -> Path:
    """Build tokenizer + model and save both to ``out`` (loadable by path)."""
    out = Path(out)
    tok = build_tokenizer(texts, vocab_size)
    model = build_model(tok, size, seed)
    out.mkdir(parents=True, exist_ok=True)
    tok.save_pretrained(out)
    model.save_pretrained(out)
    return out
