"""The evaluation stage: held-out benchmarks, pass@k, maj@k, verifier-scored best-of-N.

``generate`` (responses, resumable) -> ``grade`` (verifier, answer groups) ->
``metrics`` (per problem, bootstrap intervals) -> ``report`` (JSON, Markdown,
plots, comparisons); ``run.evaluate`` ties them together, ``scoring`` holds the
reward-model scorer for best-of-N.
"""
