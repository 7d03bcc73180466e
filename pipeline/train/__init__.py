"""The training stage: the single-process GRPO engine (this package) and, in
``pipeline.train.verl_*`` later, the multi-GPU path through verl on Ray.

Modules, in the order a step uses them: :mod:`policy` (load a causal LM, token
log-probs), :mod:`rollout` (sample K responses per prompt), ``rewards.terms``
(score them), :mod:`algorithms` (verl's advantages and losses), :mod:`engine`
(the loop), :mod:`checkpoint`, :mod:`metrics`. :mod:`sft` is the supervised
warm-up and control; :mod:`tiny_model` builds the small from-scratch models the
demo and tests use.
"""
