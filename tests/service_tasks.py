"""Sandbox task used by the service tests: the verifier's worker entry point, slow on purpose."""

import time

from rewards.check import run


def slow_check(op, *args, **kwargs):
    time.sleep(1.5)
    return run(op, *args, **kwargs)
