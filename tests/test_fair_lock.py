"""The model's lock is granted in arrival order: a session's short analysis does not wait behind
every batch of another session's long work (a search's max-attention pass, a recompute)."""

from __future__ import annotations

import threading
import time

from exbert_core.model.loading import FairLock


def _batches_before(lock) -> int:
    """How many batches a loop of short lock holds (like a search's) runs before a second thread,
    asking once, gets the lock."""
    ran = 0
    stop = threading.Event()
    started = threading.Event()

    def long_work() -> None:
        nonlocal ran
        while not stop.is_set():
            with lock:
                started.set()
                time.sleep(0.002)  # one batch
                ran += 1

    worker = threading.Thread(target=long_work)
    worker.start()
    started.wait(5)
    asked_at = ran
    with lock:
        waited = ran - asked_at
    stop.set()
    worker.join(5)
    return waited


def test_a_waiting_thread_gets_the_model_after_at_most_one_batch():
    assert max(_batches_before(FairLock()) for _ in range(5)) <= 2


def test_a_thread_that_stops_waiting_does_not_block_the_others():
    """A thread that leaves its wait with an exception (a stopped script) gives its turn away."""
    lock = FairLock()
    original = lock._condition.wait
    give_up = threading.Event()

    def wait(timeout=None):
        if threading.current_thread().name == "gives-up":
            if give_up.is_set():
                raise KeyboardInterrupt
            return original(0.02)
        return original(timeout)

    lock._condition.wait = wait
    lock.acquire()
    outcome = []

    def gives_up() -> None:
        try:
            lock.acquire()
        except KeyboardInterrupt:
            outcome.append("gave up")

    quitter = threading.Thread(target=gives_up, name="gives-up")
    quitter.start()
    time.sleep(0.1)  # it holds the ticket after ours
    got = threading.Event()
    waiter = threading.Thread(target=lambda: (lock.acquire(), got.set(), lock.release()))
    waiter.start()  # its ticket comes after the quitter's
    time.sleep(0.1)
    give_up.set()
    quitter.join(5)
    lock.release()
    assert outcome == ["gave up"]
    assert got.wait(5), "the ticket of the thread that gave up blocked the next one"
    waiter.join(5)
