"""The math answer verifier and the reward ideas built on it, as pure functions both training
engines and evaluation call: :mod:`rewards.terms` (the registry of per-response terms:
outcome, ALP, the length baselines), :mod:`rewards.progress` (PAV/MRT step segmentation and
progress), :mod:`rewards.self_correction` (SCoRe's per-attempt targets and metrics).

Python API: :func:`verify`, :func:`verify_batch`, :func:`averify` returning a
:class:`Verdict`; verl adapter: :func:`rewards.verl_adapter.compute_score`;
CLI and HTTP service: ``rl-verifier --help``.
"""

from rewards.check import REASONS, Verdict
from rewards.verifier import Verifier, averify, get_verifier, verify, verify_batch

__all__ = ["REASONS", "Verdict", "Verifier", "averify", "get_verifier", "verify", "verify_batch"]
