"""The math answer verifier and the reward terms built on it.

Python API: :func:`verify`, :func:`verify_batch`, :func:`averify` returning a
:class:`Verdict`; verl adapter: :func:`rewards.verl_adapter.compute_score`;
CLI and HTTP service: ``rl-verifier --help``.
"""

from rewards.check import REASONS, Verdict
from rewards.verifier import Verifier, averify, get_verifier, verify, verify_batch

__all__ = ["REASONS", "Verdict", "Verifier", "averify", "get_verifier", "verify", "verify_batch"]
