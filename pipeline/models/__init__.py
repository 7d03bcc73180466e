"""Models, below the stages: the policy (loading a causal LM, batch layout, log-probs), the
rollout backends (HF generate, vLLM) and the second-attempt generator, the prover's Monte Carlo
step values (:mod:`prover`), the PAV value model (:mod:`value_model`) and the tiny
from-scratch model of the demo and tests. Imports nothing of the stages (curate, train,
evaluate), which all use it."""
