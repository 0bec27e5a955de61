"""JobPoller (a runner job's events on the GUI thread) and ProgressRow, without a real runner."""

from __future__ import annotations

import queue
import threading
from types import SimpleNamespace

from medviewer.plugins.runner import Event


def _job(*kinds: str):
    job = SimpleNamespace(events=queue.Queue())
    for kind in kinds:
        job.events.put(Event(1, "fake", kind, stage=kind))
    return job


def test_poller_hands_on_events_in_order_on_the_gui_thread_and_stops_at_the_last(qtbot):
    from medviewer.ui.tasks import JobPoller

    seen = []
    poller = JobPoller(lambda e: seen.append((e.kind, threading.current_thread())), interval_ms=5)
    job = _job("started", "progress")
    poller.watch(job)
    qtbot.waitUntil(lambda: len(seen) == 2, timeout=5000)
    assert poller.active                       # not ended yet: keeps polling
    job.events.put(Event(1, "fake", "returned"))
    job.events.put(Event(1, "fake", "progress"))  # never comes after a terminal event; not read
    qtbot.waitUntil(lambda: not poller.active, timeout=5000)
    assert [k for k, _ in seen] == ["started", "progress", "returned"]
    assert all(t is threading.main_thread() for _, t in seen)
    assert poller.job is None and job.events.qsize() == 1


def test_a_new_job_watched_from_the_last_event_keeps_being_polled(qtbot):
    from medviewer.ui.tasks import JobPoller

    second = _job("started", "aborted")
    seen = []

    def on_event(event):
        seen.append(event.kind)
        if len(seen) == 1:
            poller.watch(second)

    poller = JobPoller(on_event, interval_ms=5)
    poller.watch(_job("errored"))
    qtbot.waitUntil(lambda: len(seen) == 3, timeout=5000)
    assert seen == ["errored", "started", "aborted"] and not poller.active


def test_stop_forgets_the_job(qtbot):
    from medviewer.ui.tasks import JobPoller

    seen = []
    poller = JobPoller(seen.append, interval_ms=5)
    poller.watch(_job("started"))
    poller.stop()
    poller.poll()
    assert seen == [] and not poller.active


def test_progress_row_fraction_busy_and_reset(qtbot):
    from medviewer.ui.progress_row import ProgressRow

    row = ProgressRow()
    qtbot.addWidget(row)
    row.set_fraction(0.426)
    assert (row.bar.minimum(), row.bar.maximum(), row.bar.value()) == (0, 100, 43)
    row.set_fraction(None)
    assert row.bar.maximum() == 0              # busy
    row.reset(100)
    assert (row.bar.maximum(), row.bar.value()) == (100, 100)
    row.say("done")
    assert row.label.text() == "done" and row.label.wordWrap()
