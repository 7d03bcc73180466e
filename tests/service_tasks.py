"""Sandbox task used by the service tests: a check that is slow on purpose."""

import time

from rewards.check import check


def slow_check(response, ground_truth, *args, **kwargs):
    time.sleep(1.5)
    return check(response, ground_truth, *args, **kwargs)
