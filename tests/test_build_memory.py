"""The memory of corpus builds: peaks recorded per model, the expected peak, and the rule that a
build starts only when it fits beside the server and the builds running (it waits its turn, or is
refused when it would not fit even alone). No child process here: see test_child_build.py."""

from __future__ import annotations

import threading
import time

import pytest

from exbert_core import memory
from exbert_core.corpus.build import build_memory, estimate, policy
from exbert_core.errors import BuildError

MB = 1_000_000


@pytest.fixture
def data_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("EXBERT_DATA_DIR", str(tmp_path))
    monkeypatch.delenv(memory.LIMIT_ENV, raising=False)
    return tmp_path


def test_peaks_are_kept_per_model_and_the_largest_recent_one_is_expected(data_dir, minilm):
    assert build_memory.measured_peak("minilm") is None
    assert build_memory.expected_peak(minilm.info) == estimate.child_peak_bytes(minilm.info)
    for peak in (500, 700, 600) + (550,) * build_memory.KEEP:
        build_memory.record("minilm", peak * MB)
    assert build_memory.measured_peak("minilm") == 550 * MB  # only the last KEEP builds count
    build_memory.record("minilm", 640 * MB)
    assert build_memory.expected_peak(minilm.info) == 640 * MB
    assert build_memory.measured_peak("smollm2") is None
    told = policy.plan(minilm.info, 10_000)
    assert told.memory_bytes == 640 * MB and told.memory_measured
    assert "640 MB of memory" in told.summary() and "measured on earlier builds" in told.summary()
    (data_dir / build_memory.RECORD).write_text("not json")  # a damaged record: estimates again
    assert build_memory.measured_peak("minilm") is None


def test_a_build_that_does_not_fit_beside_another_waits_its_turn(data_dir, monkeypatch):
    size = 300 * MB
    # Room for one such build beside this process, not for two.
    monkeypatch.setenv(memory.LIMIT_ENV, str(build_memory.server_bytes() + int(1.5 * size)))
    steps, order = [], []
    with build_memory.admitted("first", size, steps.append):
        assert build_memory.running() == {"first": size}

        def second() -> None:
            with build_memory.admitted("second", size, steps.append):
                order.append("second")

        waiter = threading.Thread(target=second)
        waiter.start()
        deadline = time.monotonic() + 10
        while not steps and time.monotonic() < deadline:
            time.sleep(0.02)
        assert not order and steps and steps[-1].stage == "queue"
        assert "'first'" in steps[-1].message and "take turns" in steps[-1].message
        order.append("first ends")
    waiter.join(10)
    assert order == ["first ends", "second"] and build_memory.running() == {}


def test_a_build_that_would_not_fit_even_alone_is_refused_in_plain_words(data_dir, monkeypatch, minilm):
    monkeypatch.setenv(memory.LIMIT_ENV, str(build_memory.server_bytes() + 100 * MB))
    needed = build_memory.expected_peak(minilm.info)
    with pytest.raises(BuildError, match=r"needs about [\d,]+ MB of memory.*about \d+ MB to spare"):
        with build_memory.admitted("big", needed, lambda step: None):
            pass
    problem = policy.plan(minilm.info, 10_000).problem
    assert problem and "MB of memory" in problem and "EXBERT_" not in problem  # settings are the operator's
    with pytest.raises(BuildError, match="MB of memory"):
        policy.check_build("new", exists=False, replace=False, characters=10_000, info=minilm.info)
    monkeypatch.setenv(memory.LIMIT_ENV, "100GB")
    assert policy.plan(minilm.info, 10_000).problem is None


def test_a_waiting_build_can_be_stopped(data_dir, monkeypatch):
    size = 300 * MB
    monkeypatch.setenv(memory.LIMIT_ENV, str(build_memory.server_bytes() + int(1.5 * size)))
    stop = threading.Event()
    errors = []

    def second() -> None:
        try:
            with build_memory.admitted("second", size, lambda step: None, stop):
                pass
        except BuildError as err:
            errors.append(str(err))

    with build_memory.admitted("first", size, lambda step: None):
        waiter = threading.Thread(target=second)
        waiter.start()
        stop.set()
        waiter.join(10)
    assert errors == ["The build was stopped before it started."]


def test_the_limit_is_the_operators_setting(monkeypatch):
    monkeypatch.delenv(memory.LIMIT_ENV, raising=False)
    assert memory.limit_bytes() == memory.DEFAULT_LIMIT == 2_200_000_000
    monkeypatch.setenv(memory.LIMIT_ENV, "3GB")
    assert memory.limit_bytes() == 3 * 10**9
    monkeypatch.setenv(memory.LIMIT_ENV, "lots")
    assert memory.limit_bytes() == memory.DEFAULT_LIMIT
    assert 100 * MB < memory.rss_anon() < 10**11 and memory.rss_anon(2**22 + 7) == 0  # this process; none
