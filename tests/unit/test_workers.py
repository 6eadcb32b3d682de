"""The reusable session threads of receptor._workers (the control server's threads)."""

import threading
import time

import pytest

from receptor._workers import Workers


def _wait(predicate, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached"
        time.sleep(0.01)


def test_a_finished_jobs_thread_serves_the_next_job():
    workers = Workers("test-workers", idle_seconds=5.0)
    seen: list[threading.Thread] = []
    done = threading.Event()
    try:
        workers.run(lambda: seen.append(threading.current_thread()))
        _wait(lambda: len(seen) == 1)
        time.sleep(0.05)  # let it count itself idle
        workers.run(lambda: (seen.append(threading.current_thread()), done.set()))
        assert done.wait(5)
        assert seen[0] is seen[1]
        assert workers.thread_count == 1
    finally:
        workers.stop()


def test_jobs_run_at_the_same_time_each_in_its_own_thread():
    workers = Workers("test-workers")
    barrier = threading.Barrier(21, timeout=5)
    try:
        for _ in range(20):
            workers.run(barrier.wait)
        barrier.wait()  # all twenty are running at once, or this times out
        assert workers.thread_count == 20
    finally:
        workers.stop()


def test_idle_threads_exit_after_the_idle_time():
    workers = Workers("test-workers", idle_seconds=0.1)
    before = threading.active_count()
    for _ in range(5):
        workers.run(time.sleep, 0.05)
    _wait(lambda: workers.thread_count == 0)
    _wait(lambda: threading.active_count() == before)
    # A new job after they left starts a new thread.
    done = threading.Event()
    workers.run(done.set)
    assert done.wait(5)
    workers.stop()
    assert workers.thread_count == 0


def test_a_failing_job_is_logged_and_the_thread_goes_on(caplog):
    workers = Workers("test-workers")
    done = threading.Event()
    try:
        workers.run(lambda: 1 / 0)
        _wait(lambda: "Unexpected error in a test-workers thread" in caplog.text)
        time.sleep(0.05)
        workers.run(done.set)
        assert done.wait(5)
        assert workers.thread_count == 1
    finally:
        workers.stop()


def test_stop_joins_every_thread_and_refuses_new_jobs():
    workers = Workers("test-workers")
    release = threading.Event()
    workers.run(release.wait, 5)
    workers.run(lambda: None)
    time.sleep(0.05)
    release.set()
    workers.stop()
    assert workers.thread_count == 0
    with pytest.raises(RuntimeError):
        workers.run(lambda: None)
