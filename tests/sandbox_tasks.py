"""Sandbox tasks used by tests/rewards/test_sandbox.py (run inside ``python -m rewards.worker``)."""

import time


def echo(value):
    return value


def sleep_then_echo(seconds, value):
    time.sleep(seconds)
    return value


def allocate(mb):
    return len(bytearray(mb * 1024 * 1024))


def fail(message):
    raise ValueError(message)


def slow_check(response, ground_truth, *args, **kwargs):
    """rewards.check.check, but far slower than any test's timeout."""
    from rewards.check import check

    time.sleep(30)
    return check(response, ground_truth, *args, **kwargs)
