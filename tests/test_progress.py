"""progress: the time left follows the live rate of a stage, and the first estimate counts the
machine's load (issue 19, 15)."""

from __future__ import annotations

import pytest

from exbert_core import progress
from exbert_core.progress import Rate, busy_factor


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch):
    clock = Clock()
    monkeypatch.setattr(progress.time, "monotonic", clock)
    return clock


def test_the_time_left_follows_the_live_rate(clock):
    """100 units/s for a minute, then the machine gets busy (25 units/s): within the window the
    estimate is the busy one, not the average since the start."""
    rate = Rate()
    done = 0.0
    for _ in range(60):
        clock.now += 1
        done += 100
        rate.update(done)
    assert rate.eta(done, done + 6000) == pytest.approx(60, rel=0.05)
    for _ in range(40):
        clock.now += 1
        done += 25
        rate.update(done)
    assert rate.eta(done, done + 2500) == pytest.approx(100, rel=0.05)  # 2,500 units at 25/s
    assert rate.per_second(done) == pytest.approx(25, rel=0.05)


def test_an_amount_that_starts_again_restarts_the_measure(clock):
    """The next shard counts from 0: the rate is measured again, never negative."""
    rate = Rate()
    for i in range(1, 11):
        clock.now += 1
        rate.update(i * 50)
    clock.now += 1
    rate.update(0)
    assert rate.eta(0, 500) is None
    for i in range(1, 6):
        clock.now += 1
        rate.update(i * 10)
    assert rate.eta(50, 100) == pytest.approx(5, rel=0.05)


def test_busy_factor_counts_the_run_queue_over_the_cores():
    assert busy_factor(0.0, 2) == 1.0  # idle: as measured
    assert busy_factor(3.0, 2) == pytest.approx(2.0)  # 3 others + the build on 2 cores
    assert busy_factor(0.5, 16) == 1.0
    assert busy_factor() >= 1.0  # this machine's own
