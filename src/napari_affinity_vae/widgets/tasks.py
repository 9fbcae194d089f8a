"""Background work for the dock widgets: a generator run in a napari worker, with a napari progress
bar, a Cancel, errors shown as notifications, and results delivered on the main thread."""

from __future__ import annotations

from collections.abc import Callable, Generator
from typing import Any

from napari.qt.threading import GeneratorWorker, create_worker
from napari.utils import progress
from napari.utils.notifications import show_error
from psygnal import Signal
from qtpy.QtCore import QObject

from napari_affinity_vae.errors import AffinityVAEError


def show_failure(error: BaseException) -> None:
    """A failed task as a napari error notification (a user's mistake needs no type name)."""
    if isinstance(error, AffinityVAEError | ValueError):
        show_error(str(error))
    else:
        show_error(f"{type(error).__name__}: {error}")


class Task:
    """At most one running job; ``steps`` yields how many of ``total`` units are done and returns
    the result, which goes to ``on_result`` unless the job was cancelled."""

    running_changed = Signal(bool)

    def __init__(self, owner: QObject) -> None:
        """``owner`` is the widget the task belongs to: its deletion cancels the task."""
        self.worker: GeneratorWorker | None = None
        owner.destroyed.connect(self._owner_deleted)

    @property
    def running(self) -> bool:
        return self.worker is not None

    def start(
        self,
        steps: Callable[[], Generator[int, None, Any]],
        *,
        total: int,
        desc: str,
        on_result: Callable[[Any], None],
    ) -> GeneratorWorker:
        self.cancel()

        def run() -> Generator[int, None, Any]:  # a generator function, as napari requires
            return (yield from steps())

        worker = create_worker(run, _start_thread=False)
        bar = progress(total=total, desc=desc)
        worker.yielded.connect(lambda done: bar.update(done - bar.n))
        worker.returned.connect(on_result)
        worker.errored.connect(show_failure)
        worker.finished.connect(bar.close)
        worker.finished.connect(lambda: self._finished(worker))
        self.worker = worker
        self.running_changed.emit(True)
        worker.start()
        return worker

    def cancel(self) -> None:
        """Stop the running job at its next step; its result is never delivered."""
        if self.worker is not None:
            self.worker.returned.disconnect()
            self.worker.quit()
            self._finished(self.worker)

    def _owner_deleted(self) -> None:
        self.running_changed.disconnect()
        self.cancel()

    def _finished(self, worker: GeneratorWorker) -> None:
        if self.worker is worker:
            self.worker = None
            self.running_changed.emit(False)


def run_in_background(
    function: Callable[..., Any], *args: Any, on_result: Callable[[Any], None]
) -> Any:
    """A short job (a decode, an explanation) off the main thread, without a progress bar."""
    worker = create_worker(function, *args, _start_thread=False)
    worker.returned.connect(on_result)
    worker.errored.connect(show_failure)
    worker.start()
    return worker
