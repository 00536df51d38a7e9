"""How ``fastrnn bench`` takes one timing sample; the harness and the peak measurement share it.

A sample is a batch of ``number`` back-to-back calls, timed as a whole with the garbage
collector off, and reported as the time of one call. The batch is sized from one warm-up call
so that a sample lasts at least ``min_sample`` seconds: long enough for the clock's resolution
and the call's fixed costs not to matter.
"""

import gc
import math

__all__ = ["sample", "calls_per_sample", "warm_up", "MIN_SAMPLE_S", "SETTLE_S", "WARM_S"]

MIN_SAMPLE_S = 0.005
# Seconds to wait before timing on another thread pool than the one used last: OpenBLAS's idle
# threads keep spinning for about 0.1 s after a call and torch's for 10-50 ms (measured on the
# project's 2-core machine), taking a core from the other pool (see fastrnn.bench.harness).
SETTLE_S = 0.15
# Seconds of untimed calls after such a pause, before the samples: on the project's 2-core VM the
# first call after 0.15 s idle runs 1.4-1.8x slow and the next two 1.05-1.1x (the cores come back
# from idle), which put one slow sample into every pool's share of the rounds.
WARM_S = 0.02


def calls_per_sample(one_call_s, min_sample):
    """How many calls make a sample last at least ``min_sample`` seconds, given one call's time."""
    return max(1, math.ceil(min_sample / max(one_call_s, 1e-9)))


def warm_up(fns, seconds, clock):
    """Calls ``fns`` in turn, each at least once, until ``seconds`` have passed on ``clock``; returns the calls made."""
    calls = 0
    start = clock()
    while True:
        for fn in fns:
            fn()
        calls += len(fns)
        if clock() - start >= seconds:
            return calls


def sample(fn, number, clock):
    """Seconds per call of ``fn``, from ``number`` back-to-back calls timed by ``clock``."""
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        start = clock()
        for _ in range(number):
            fn()
        return (clock() - start) / number
    finally:
        if gc_was_enabled:
            gc.enable()
