"""The training stage: the single-process GRPO engine (this package) and, in
``pipeline.train.verl_*``, the multi-GPU path through verl on Ray.

Modules, in the order a step uses them: ``pipeline.models.rollout`` (sample K responses
per prompt, and second attempts), ``rewards`` (score them: terms, progress, self-correction),
``pipeline.models.prover`` / ``pipeline.models.value_model`` (step values for progress),
:mod:`algorithms` (verl's advantages and losses), :mod:`engine` (the loop),
:mod:`checkpoint`, :mod:`metrics`, :mod:`heldout`. :mod:`sft` is the supervised warm-up
and control, :mod:`pav` trains the PAV model, :mod:`config` is the stage's schema.
"""
