"""Running plugins in the background: a thread for light work, a child process for heavy models.

Each :meth:`Runner.submit` gives a :class:`Job`. The job reports :class:`Event` s, in order:
``started``, any number of ``progress`` (stage, fraction), then exactly one of ``returned``
(the checked result), ``errored`` (a one-line message) or ``aborted`` (after cancel).
Events go to plain callbacks (``on_event`` and :meth:`Runner.subscribe`), called from a runner
thread, and into ``job.events`` (a ``queue.Queue``) for polling. No Qt here: the window bridges
callbacks to Qt signals (emit a signal from the callback; Qt queues it to the GUI thread).

Process jobs run in a ``spawn`` child (torch and fork do not mix). Cancel sets a shared flag, and
if the child has not stopped within ``cancel_grace_s`` it is terminated, then killed: the job is
``aborted`` well within a second whatever the plugin does. A crash, a signal or memory exhaustion
in the child (its address space is capped with ``RLIMIT_AS``) becomes an ``errored`` event; the
viewer carries on. Thread jobs cannot be killed: on cancel the job is ``aborted`` after the grace
time and a plugin that ignores the flag is left to finish on its own, its result discarded.

``Runner.warm(manifest)`` starts a process plugin's child ahead of time (its torch/MONAI imports
done before the user presses Run; another is started after each run); for a thread plugin it
calls the plugin's ``warm_up`` (load the weights) in the background. A window would do::

    class PluginBridge(QObject):
        event = Signal(object)          # emitted from the runner thread, delivered queued

    bridge = PluginBridge()
    runner = Runner(force_cpu=settings.force_cpu)
    runner.subscribe(bridge.event.emit)
    bridge.event.connect(panel.on_plugin_event)   # runs in the GUI thread
    runner.warm(manifest)                          # when the plugin panel opens
    job = runner.submit(manifest, Request(volume, prompts, params))  # PluginError: bad params
    cancel_button.clicked.connect(job.cancel)
"""

from __future__ import annotations

import dataclasses
import glob
import itertools
import multiprocessing as mp
import os
import queue
import signal
import threading
import time
import traceback
import weakref
from concurrent.futures import Future
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, Callable

from medviewer.core.errors import MedviewerError
from medviewer.plugins.api import (
    CancelToken, Cancelled, Manifest, Plugin, PluginError, Request, Result, check_result,
)

TERMINAL = ("returned", "errored", "aborted")


@dataclass(frozen=True)
class Event:
    """One thing that happened to a job. ``kind``: started, progress, returned, errored, aborted."""

    job_id: int
    plugin_id: str
    kind: str
    stage: str = ""
    fraction: float | None = None
    result: Result | None = None
    message: str = ""
    detail: str = ""  # a traceback for a log, never shown as the message


EventCallback = Callable[[Event], None]


def default_memory_limit() -> int | None:
    """Three quarters of physical memory, as bytes (None where unknown)."""
    try:
        return int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") * 0.75)
    except (ValueError, OSError, AttributeError):
        return None


def _describe_memory(limit: int | None) -> str:
    return f" (limit {limit / 2**30:.1f} GiB)" if limit else ""


def _execute(manifest: Manifest, request: Request, progress, cancel: CancelToken,
             plugin: Plugin | None = None) -> Result:
    """Load, check, prepare and run one plugin; used by both the thread and the child process."""
    progress("loading plugin", None)
    plugin = _available_plugin(manifest, plugin)
    device = plugin.resolve_device(request.device)
    request = dataclasses.replace(request, device=device)
    cancel.check()
    progress("preparing", None)
    plugin.prepare(device)
    cancel.check()
    return plugin.run(request, progress, cancel)


def _available_plugin(manifest: Manifest, plugin: Plugin | None = None) -> Plugin:
    """``manifest``'s plugin (loaded unless given), or PluginError when it cannot run here."""
    from medviewer.plugins.registry import load_plugin

    plugin = plugin if plugin is not None else load_plugin(manifest)
    available = plugin.is_available()
    if not available:
        raise PluginError(f"plugin {manifest.id} cannot run here: {available.describe()}")
    return plugin


def _error_message(manifest: Manifest, exc: BaseException, memory_limit: int | None) -> str:
    if isinstance(exc, MemoryError):
        return f"plugin {manifest.id} ran out of memory{_describe_memory(memory_limit)}"
    if isinstance(exc, MedviewerError):
        return str(exc)
    text = str(exc).strip().splitlines()
    first = text[0] if text else ""
    if "out of memory" in first.lower() or "DefaultCPUAllocator" in first:
        return f"plugin {manifest.id} ran out of memory{_describe_memory(memory_limit)}: {first}"
    return f"plugin {manifest.id} failed: {type(exc).__name__}: {first}" if first else \
        f"plugin {manifest.id} failed: {type(exc).__name__}"


def _child_main(manifest: Manifest, in_q, out_q, cancel_event, memory_limit: int | None) -> None:
    """The body of a child process: import the plugin, wait for one request, run it.

    Everything it says goes through ``out_q``. Started ahead of time (a warm worker), the slow
    imports (torch, MONAI) are done before the user asks for a run.
    """
    if memory_limit and not glob.glob("/dev/nvidia[0-9]*"):
        # CUDA reserves huge virtual address ranges, so the cap is only set without a GPU.
        try:
            import resource

            resource.setrlimit(resource.RLIMIT_AS, (memory_limit, memory_limit))
        except (ImportError, ValueError, OSError):
            pass
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl+C in a terminal is the parent's to handle
    import warnings

    warnings.simplefilter("ignore")  # library deprecation chatter is not the user's business

    def progress(stage: str, fraction: float | None = None) -> None:
        out_q.put(("progress", str(stage), None if fraction is None else float(fraction)))

    plugin, load_error = None, None
    try:
        from medviewer.plugins.registry import load_plugin

        plugin = load_plugin(manifest)
    except BaseException as exc:  # noqa: BLE001 - reported when a request comes
        load_error = exc
    request = in_q.get()
    if request is None:
        return
    try:
        if load_error is not None:
            raise load_error
        result = _execute(manifest, request, progress, CancelToken(cancel_event), plugin)
        out_q.put(("returned", result))
    except Cancelled:
        out_q.put(("aborted",))
    except BaseException as exc:  # noqa: BLE001 - everything must reach the parent as a message
        message = _error_message(manifest, exc, memory_limit)
        try:
            detail = traceback.format_exc()
        except MemoryError:
            detail = ""
        try:
            out_q.put(("errored", message, detail))
        except Exception:
            out_q.put(("errored", message, ""))
    finally:
        out_q.close()
        out_q.join_thread()


@dataclass
class _Worker:
    """A child process waiting for (or running) one request of one plugin."""

    manifest: Manifest
    proc: Any
    in_q: Any
    out_q: Any
    cancel_event: Any


class Job:
    """One plugin run. Cancel with :meth:`cancel`; wait with :meth:`wait`."""

    def __init__(self, job_id: int, manifest: Manifest, request: Request, callbacks: list[EventCallback]):
        self.id = job_id
        self.manifest = manifest
        self.request = request
        self.events: queue.Queue[Event] = queue.Queue()
        self.state = "pending"  # running, returned, errored, aborted
        self.result: Result | None = None
        self.error: str | None = None
        self._callbacks = callbacks
        self._lock = threading.Lock()
        self._done = threading.Event()
        self._cancel_requested = threading.Event()
        self.cancel_requested_at: float | None = None
        self.finished_at: float | None = None

    # ---- emitted by the runner ---------------------------------------------------------------
    def _emit(self, kind: str, **fields: Any) -> bool:
        with self._lock:
            if self._done.is_set():
                return False  # a result arriving after abort, or a second terminal event
            if kind == "started":
                self.state = "running"
            if kind in TERMINAL:
                self.state = kind
                self.result = fields.get("result")
                self.error = fields.get("message") if kind == "errored" else None
                self.finished_at = time.monotonic()
            event = Event(self.id, self.manifest.id, kind, **fields)
            self.events.put(event)
            if kind in TERMINAL:
                self._done.set()
        for cb in list(self._callbacks):
            try:
                cb(event)
            except Exception:  # a listener's bug must not stop the job
                traceback.print_exc()
        return True

    # ---- for the caller ----------------------------------------------------------------------
    @property
    def done(self) -> bool:
        return self._done.is_set()

    def cancel(self) -> None:
        """Ask the plugin to stop; the job ends ``aborted`` within about a second."""
        if not self._done.is_set() and not self._cancel_requested.is_set():
            self.cancel_requested_at = time.monotonic()
            self._cancel_requested.set()

    def wait(self, timeout: float | None = None) -> str:
        """Block until the job ends (or ``timeout``); returns its state."""
        self._done.wait(timeout)
        return self.state

    def result_or_raise(self, timeout: float | None = None) -> Result:
        state = self.wait(timeout)
        if state == "returned":
            return self.result  # type: ignore[return-value]
        if state == "errored":
            raise PluginError(self.error or "plugin failed")
        if state == "aborted":
            raise PluginError(f"plugin {self.manifest.id} was cancelled")
        raise PluginError(f"plugin {self.manifest.id} is still running")


class Runner:
    """Runs plugin jobs in the background; safe to share between the window and scripts.

    ``force_cpu`` makes every job run on the CPU whatever it asks for; ``memory_limit`` (bytes)
    caps a child process's address space (default: three quarters of physical memory).
    """

    def __init__(self, *, force_cpu: bool = False, memory_limit: int | None | str = "default",
                 cancel_grace_s: float = 0.3):
        self._idle: dict[str, _Worker] = {}
        self._keep_warm: set[str] = set()
        self._warmups: dict[tuple, Future] = {}
        self._idle_lock = threading.Lock()
        self.force_cpu = force_cpu
        self.memory_limit = default_memory_limit() if memory_limit == "default" else memory_limit
        self.cancel_grace_s = cancel_grace_s
        self._callbacks: list[EventCallback] = []
        self._ids = itertools.count(1)
        self._jobs: weakref.WeakValueDictionary[int, Job] = weakref.WeakValueDictionary()  # results are the caller's
        self._ctx = mp.get_context("spawn")

    def subscribe(self, callback: EventCallback) -> None:
        """Call ``callback(event)`` for every job's events (from a runner thread)."""
        self._callbacks.append(callback)

    def jobs(self) -> list[Job]:
        """The jobs still referenced somewhere (running ones always are, by their thread)."""
        return list(self._jobs.values())

    def submit(self, manifest: Manifest, request: Request, *, on_event: EventCallback | None = None,
               isolation: str | None = None, timeout_s: float | None = None) -> Job:
        """Start ``manifest``'s plugin on ``request`` in the background and return its job.

        ``isolation`` overrides the manifest's ('thread' or 'process'); ``timeout_s`` ends a run
        that takes longer with an error (a hung plugin).
        """
        # Parameters get their defaults and types here (unknown names raise PluginError now).
        request = dataclasses.replace(request, params=manifest.resolve_params(request.params))
        if self.force_cpu:
            request = dataclasses.replace(request, device="cpu")
        callbacks = list(self._callbacks) + ([on_event] if on_event else [])
        job = Job(next(self._ids), manifest, request, callbacks)
        self._jobs[job.id] = job
        mode = isolation or manifest.isolation
        target = self._run_process if mode == "process" else self._run_thread
        threading.Thread(target=target, args=(job, timeout_s), name=f"medviewer-plugin-{job.id}",
                         daemon=True).start()
        return job

    def run(self, manifest: Manifest, request: Request, **kwargs: Any) -> Result:
        """Run and wait; the result, or PluginError with the job's message."""
        return self.submit(manifest, request, **kwargs).result_or_raise()

    def cancel_all(self) -> None:
        for job in list(self._jobs.values()):
            job.cancel()

    def warm(self, manifest: Manifest, params: dict[str, Any] | None = None,
             device: str = "auto") -> Future | None:
        """Get ``manifest``'s plugin ready before the user runs it.

        A process plugin: start its child now, so that its imports (torch, MONAI) are done before
        the user runs it; after each run another is started. Returns None.

        A thread plugin: load it and call its :meth:`~medviewer.plugins.api.Plugin.warm_up` with
        ``params`` (resolved as a run's are) in a background thread. Returns a
        ``concurrent.futures.Future`` of the seconds that took, or of the error (a run reports it
        again). Asking again for the same plugin, parameters and device gives the same future,
        unless the last try failed.
        """
        if manifest.isolation != "process":
            return self._warm_thread(manifest, manifest.resolve_params(params), device)
        with self._idle_lock:
            self._keep_warm.add(manifest.id)
        self._rewarm(manifest)
        return None

    def _warm_thread(self, manifest: Manifest, params: dict[str, Any], device: str) -> Future:
        if self.force_cpu:
            device = "cpu"
        key = (manifest.id, repr(sorted(params.items())), device)
        with self._idle_lock:
            future = self._warmups.get(key)
            if future is not None and not (future.done() and future.exception() is not None):
                return future
            future = self._warmups[key] = Future()

        def work() -> None:
            started = time.perf_counter()
            try:
                plugin = _available_plugin(manifest)
                plugin.warm_up(MappingProxyType(dict(params)), plugin.resolve_device(device))
            except Exception as exc:  # noqa: BLE001  (the run that follows reports it)
                future.set_exception(exc)
                return
            future.set_result(time.perf_counter() - started)

        threading.Thread(target=work, name=f"medviewer-warm-{manifest.id}", daemon=True).start()
        return future

    def _rewarm(self, manifest: Manifest) -> None:
        """Have a live waiting worker for ``manifest`` if it is kept warm (checked under the lock,
        so that a run ending during shutdown starts none)."""
        with self._idle_lock:
            if manifest.id not in self._keep_warm:
                return
            worker = self._idle.get(manifest.id)
            if worker is not None and worker.proc.is_alive() and worker.manifest == manifest:
                return
            self._idle[manifest.id] = self._start_worker(manifest)
        if worker is not None:
            self._retire(worker)

    def shutdown(self) -> None:
        """Cancel running jobs and end the waiting child processes."""
        self.cancel_all()
        with self._idle_lock:
            self._keep_warm.clear()
            idle, self._idle = list(self._idle.values()), {}
        for worker in idle:
            self._retire(worker)

    def _start_worker(self, manifest: Manifest) -> _Worker:
        ctx = self._ctx
        in_q, out_q, cancel_event = ctx.Queue(), ctx.Queue(), ctx.Event()
        proc = ctx.Process(target=_child_main, name=f"medviewer-plugin-{manifest.id}",
                           args=(manifest, in_q, out_q, cancel_event, self.memory_limit), daemon=True)
        proc.start()
        return _Worker(manifest, proc, in_q, out_q, cancel_event)

    def _take_worker(self, manifest: Manifest) -> _Worker:
        with self._idle_lock:
            worker = self._idle.pop(manifest.id, None)
        if worker is not None and worker.proc.is_alive() and worker.manifest == manifest:
            return worker
        if worker is not None:
            self._retire(worker)
        return self._start_worker(manifest)

    def _retire(self, worker: _Worker) -> None:
        try:
            worker.in_q.put(None)
        except Exception:
            pass
        self._stop(worker.proc, 0.2)
        for q in (worker.in_q, worker.out_q):
            q.close()
            q.cancel_join_thread()

    # ---- thread jobs -------------------------------------------------------------------------
    def _run_thread(self, job: Job, timeout_s: float | None) -> None:
        # The plugin sees the job's own cancel flag, so a cancel asked for before the plugin
        # returns always ends the job aborted, however the monitor loop below is scheduled.
        token = CancelToken(job._cancel_requested)

        def progress(stage: str, fraction: float | None = None) -> None:
            if not job.done:
                job._emit("progress", stage=str(stage), fraction=None if fraction is None else float(fraction))

        def work() -> None:
            try:
                result = _execute(job.manifest, job.request, progress, token)
                if token.is_set():
                    job._emit("aborted")
                    return
                result = check_result(job.manifest, job.request, result)
                job._emit("returned", result=result)
            except Cancelled:
                job._emit("aborted")
            except BaseException as exc:  # noqa: BLE001
                job._emit("errored", message=_error_message(job.manifest, exc, None),
                          detail=traceback.format_exc())

        job._emit("started")
        worker = threading.Thread(target=work, name=f"medviewer-plugin-{job.id}-work", daemon=True)
        worker.start()
        deadline = time.monotonic() + timeout_s if timeout_s else None
        while worker.is_alive() and not job.done:
            if job._cancel_requested.is_set():
                token.set()
                worker.join(self.cancel_grace_s)
                job._emit("aborted")  # no-op when the plugin stopped by itself
                return
            if deadline and time.monotonic() > deadline:
                token.set()
                job._emit("errored", message=f"plugin {job.manifest.id} did not finish within "
                                              f"{timeout_s:g} s and was stopped")
                return
            worker.join(0.05)

    # ---- process jobs ------------------------------------------------------------------------
    def _run_process(self, job: Job, timeout_s: float | None) -> None:
        try:
            worker = self._take_worker(job.manifest)
            worker.in_q.put(job.request)
        except Exception as exc:
            job._emit("errored", message=f"plugin {job.manifest.id}: cannot start its process ({exc})")
            return
        job._emit("started")
        proc, out_q = worker.proc, worker.out_q
        deadline = time.monotonic() + timeout_s if timeout_s else None
        try:
            while True:
                if job._cancel_requested.is_set():
                    worker.cancel_event.set()
                    self._stop(proc, self.cancel_grace_s)
                    job._emit("aborted")
                    return
                if deadline and time.monotonic() > deadline:
                    self._stop(proc, 0.0)
                    job._emit("errored", message=f"plugin {job.manifest.id} did not finish within "
                                                  f"{timeout_s:g} s and was stopped")
                    return
                try:
                    msg = out_q.get(timeout=0.05)
                except queue.Empty:
                    if not proc.is_alive():
                        # It died; anything it said last may still be in the pipe.
                        try:
                            msg = out_q.get(timeout=0.5)
                        except queue.Empty:
                            job._emit("errored", message=self._death_message(job, proc))
                            return
                    else:
                        continue
                except (EOFError, OSError):
                    job._emit("errored", message=self._death_message(job, proc))
                    return
                if self._handle(job, msg):
                    proc.join(2.0)
                    return
        finally:
            if proc.is_alive():
                self._stop(proc, 0.5)
            for q in (worker.in_q, out_q):
                q.close()
                q.cancel_join_thread()
            try:
                self._rewarm(job.manifest)
            except Exception:
                pass

    def _handle(self, job: Job, msg: tuple) -> bool:
        kind = msg[0]
        if kind == "progress":
            job._emit("progress", stage=msg[1], fraction=msg[2])
            return False
        if kind == "returned":
            try:
                result = check_result(job.manifest, job.request, msg[1])
            except PluginError as exc:
                job._emit("errored", message=str(exc))
                return True
            job._emit("returned", result=result)
        elif kind == "errored":
            job._emit("errored", message=msg[1], detail=msg[2] if len(msg) > 2 else "")
        else:
            job._emit("aborted")
        return True

    def _death_message(self, job: Job, proc) -> str:
        proc.join(1.0)
        code = proc.exitcode
        if code is not None and code < 0:
            try:
                name = signal.Signals(-code).name
            except ValueError:
                name = f"signal {-code}"
            hint = " (most likely out of memory)" if -code == signal.SIGKILL else \
                " (a crash in native code)" if -code in (signal.SIGSEGV, signal.SIGBUS, signal.SIGABRT) else ""
            return f"plugin {job.manifest.id} process was killed by {name}{hint}"
        return f"plugin {job.manifest.id} process ended unexpectedly (exit code {code})"

    @staticmethod
    def _stop(proc, grace_s: float) -> None:
        proc.join(grace_s)
        if proc.is_alive():
            proc.terminate()
            proc.join(0.3)
        if proc.is_alive():
            proc.kill()
            proc.join(0.5)
