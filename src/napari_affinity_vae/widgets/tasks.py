"""Background work for the dock widgets: a generator run in a napari worker, with a napari progress
bar, a Cancel, errors shown once as a napari notification, and results delivered on the main
thread."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Generator
from dataclasses import dataclass
from typing import Any

from napari.qt.threading import GeneratorWorker, create_worker
from napari.utils import progress
from napari.utils.notifications import show_info
from psygnal import Signal
from qtpy.QtCore import QEvent, QObject

from napari_affinity_vae.widgets.notify import show_failure

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Failure:
    """What a background job raised, delivered to the main thread as its result."""

    error: BaseException


def _catching(steps: Callable[[], Generator[int, None, Any]]) -> Generator[int, None, Any]:
    """Run ``steps``; an exception becomes a :class:`Failure` result, so that napari's own error
    relay (a second, raw notification) never sees it."""
    try:
        return (yield from steps())
    except Exception as error:
        return Failure(error)


class Task:
    """At most one running job; ``steps`` yields how many of ``total`` units are done (a progress
    bar unless ``total`` is 0) and returns the result, which goes to ``on_result`` unless the job
    was cancelled or replaced by a newer one; an error goes to ``on_error`` after it is shown.
    With ``on_yield``, steps yield (done, update) pairs and each update goes to ``on_yield`` on
    the main thread as it comes, until the job is cancelled.
    :attr:`running` stays true until a cancelled job has stopped."""

    running_changed = Signal(bool)

    def __init__(self, owner: QObject, cancel: Callable[[], None] | None = None) -> None:
        """``owner`` is the widget the task belongs to: its deletion cancels the task, and so
        does closing its panel (napari then takes the widget out of the window, and a new one
        comes if the user opens the panel again), through ``cancel`` if given (the owner's own
        Cancel, which may keep what the job has done so far)."""
        self.worker: GeneratorWorker | None = None
        self._desc = ""
        self._stop: threading.Event | None = None
        self._cancel = cancel or self.cancel
        owner.destroyed.connect(self._owner_deleted)
        owner.installEventFilter(_Unparented(owner, self._panel_closed))

    @property
    def running(self) -> bool:
        return self.worker is not None

    @property
    def cancelling(self) -> bool:
        return self.worker is not None and self.worker.abort_requested

    def start(
        self,
        steps: Callable[[], Generator[int, None, Any]],
        *,
        total: int,
        desc: str,
        on_result: Callable[[Any], None],
        on_error: Callable[[BaseException], None] | None = None,
        on_yield: Callable[[Any], None] | None = None,
        stop: threading.Event | None = None,
    ) -> GeneratorWorker:
        """``stop``, set on cancel, lets a job that checks it end between its steps too."""
        self.cancel()

        running: list[Generator[int, None, Any]] = []

        def run() -> Generator[int, None, Any]:  # a generator function, as napari requires
            running.append(_catching(steps))
            return (yield from running[0])

        def close() -> None:  # a cancelled job's cleanup (its finally blocks) runs now, not at
            for job in running:  # the next garbage collection (napari leaves it suspended)
                job.close()

        def deliver(result: Any) -> None:
            if worker.abort_requested:
                return
            if isinstance(result, Failure):
                show_failure(result.error, desc)
                if on_error is not None:
                    on_error(result.error)
            else:
                on_result(result)

        worker = create_worker(run, _start_thread=False)
        if on_yield is not None:

            def deliver_update(pair: tuple[int, Any]) -> None:
                if not worker.abort_requested:
                    on_yield(pair[1])

            worker.yielded.connect(deliver_update)
        if total:  # a progress bar for long work; short jobs (total 0) show none
            bar = progress(total=total, desc=desc)
            done_of = (lambda pair: pair[0]) if on_yield is not None else (lambda done: done)
            worker.yielded.connect(lambda step: bar.update(done_of(step) - bar.n))
            worker.finished.connect(bar.close)
        worker.returned.connect(deliver)
        worker.finished.connect(close)
        worker.finished.connect(lambda: self._finished(worker))
        self.worker, self._desc, self._stop = worker, desc, stop
        self.running_changed.emit(True)
        log.debug("%s: started", desc)
        worker.start()
        return worker

    def cancel(self) -> None:
        """Stop the running job at its next step; its result is never delivered, and the task
        counts as running until the job has stopped."""
        if self.worker is not None and not self.worker.abort_requested:
            self.worker.quit()
            if self._stop is not None:
                self._stop.set()
            self.running_changed.emit(True)  # now cancelling: listeners update their buttons

    def _owner_deleted(self) -> None:
        self.running_changed.disconnect()
        self.cancel()

    def _panel_closed(self) -> None:
        if self.running and not self.cancelling:
            self._cancel()
            show_info(f"{self._desc} stopped: its panel was closed")

    def _finished(self, worker: GeneratorWorker) -> None:
        if self.worker is worker:
            self.worker = None
            self.running_changed.emit(False)


class _Unparented(QObject):
    """Calls ``then`` when the widget it watches loses its parent (taken out of the window)."""

    def __init__(self, widget: QObject, then: Callable[[], None]) -> None:
        super().__init__(widget)
        self._then = then

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        if event.type() == QEvent.Type.ParentChange and watched.parent() is None:
            self._then()
        return False


def one_step(function: Callable[..., Any], *args: Any) -> Generator[int, None, Any]:
    """A short job (a decode, an explanation) as a one-step generator for a :class:`Task`."""
    result = function(*args)
    yield 1
    return result
