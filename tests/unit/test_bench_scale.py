"""bench/scale.py's fixed-rate schedule: the requests arrive one at a time, never in bursts of N.

Pure arithmetic on the schedule; no timing is measured or asserted.
"""

from __future__ import annotations

import importlib
import itertools
import math
import sys
from pathlib import Path
from types import ModuleType

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench"


@pytest.fixture(scope="module")
def scale() -> ModuleType:
    sys.path.insert(0, str(BENCH))
    try:
        return importlib.import_module("scale")
    finally:
        sys.path.remove(str(BENCH))


@pytest.mark.parametrize("pairs", [1, 2, 4, 8])
def test_fixed_rate_requests_arrive_evenly_spaced_whatever_the_number_of_gateways(
    scale: ModuleType, pairs: int
) -> None:
    rate, seconds = 20.0, 5.0
    schedule = scale.send_times(pairs, rate, seconds)

    assert len(schedule) == pairs
    merged = sorted(at for times in schedule for at in times)
    assert len(merged) == int(rate * seconds)  # the same total rate at every N
    gaps = [b - a for a, b in itertools.pairwise(merged)]
    assert all(math.isclose(gap, 1 / rate) for gap in gaps)  # no two requests sent at once


def test_each_gateway_sends_at_its_own_even_pace(scale: ModuleType) -> None:
    schedule = scale.send_times(4, 20.0, 2.0)

    for i, times in enumerate(schedule):
        assert math.isclose(times[0], i / 20.0)
        assert all(math.isclose(b - a, 4 / 20.0) for a, b in itertools.pairwise(times))


def test_bursts_reproduce_the_old_schedule_for_comparison(scale: ModuleType) -> None:
    schedule = scale.send_times(8, 20.0, 5.0, bursts=True)

    assert {times[0] for times in schedule} == {0.0}  # all eight at once: what the probe compares against
