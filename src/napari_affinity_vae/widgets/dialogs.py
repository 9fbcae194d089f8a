"""Small Qt helpers the dock widgets share: questions in dialogs, and labels and forms that wrap or
scroll instead of growing the window."""

from __future__ import annotations

from typing import TYPE_CHECKING

from magicgui.widgets import Container, FloatSpinBox, Label
from magicgui.widgets.bases import Widget
from qtpy.QtCore import Qt
from qtpy.QtWidgets import (
    QFrame,
    QInputDialog,
    QMessageBox,
    QScrollArea,
    QSizePolicy,
    QWidget,
)

if TYPE_CHECKING:
    from napari_affinity_vae.session import Session


def confirm(parent: QWidget | None, title: str, question: str) -> bool:
    """Ask a yes/no question in a modal dialog; No is the default."""
    buttons = QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No
    box = QMessageBox(QMessageBox.Icon.Question, title, question, buttons, parent)
    box.setDefaultButton(QMessageBox.StandardButton.No)
    return box.exec() == QMessageBox.StandardButton.Yes


def stays_in_project(parent: QWidget | None, session: Session, doing: str) -> bool:
    """Whether the user would rather keep the open project's embedding and hand edits than go
    on ``doing`` something that leaves the project (asked only when there are some)."""
    lost = session.project_losses()
    if not lost:
        return False
    question = f"{doing} leaves the project and discards its {' and its '.join(lost)}. Go on?"
    return not confirm(parent, "Leave the project?", question)


def choose(parent: QWidget | None, title: str, question: str, items: list[str]) -> str | None:
    """Ask the user to choose one of ``items`` in a modal dialog; None if they cancel."""
    choice, accepted = QInputDialog.getItem(parent, title, question, items, 0, False)
    return choice if accepted else None


VOXEL_DECIMALS = 4  # RELION's pixel sizes have four (1.0825 Å)


def voxel_size_box() -> FloatSpinBox:
    """A voxel size field in Angstrom (0: none given), to ``VOXEL_DECIMALS`` decimals."""
    box = FloatSpinBox(label="Voxel size (Å)", min=0.0, max=1000.0, step=0.1)
    box.native.setDecimals(VOXEL_DECIMALS)
    return box


def ask_number(
    parent: QWidget | None,
    title: str,
    question: str,
    value: float,
    low: float,
    high: float,
    decimals: int = 3,
) -> float | None:
    """Ask for a number between ``low`` and ``high`` in a modal dialog, ``value`` filled in;
    None if they cancel."""
    number, accepted = QInputDialog.getDouble(parent, title, question, value, low, high, decimals)
    return number if accepted else None


def wrapping(label: Label) -> Label:
    """Let ``label`` wrap its text at the dock's width, however long the text, rather than make
    the dock (and the window) wider."""
    label.native.setWordWrap(True)
    label.native.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
    return label


def scrolling(dock: Container, widgets: list[Widget]) -> Container:
    """Lay ``widgets`` out in ``dock`` inside a scroll area, so that a tall dock widget scrolls
    rather than make the window taller than the screen; return the form holding them."""
    form = Container(widgets=widgets)
    form.native.layout().addStretch(1)  # the rows stay together at the top
    area = QScrollArea()
    area.setWidgetResizable(True)
    area.setFrameShape(QFrame.Shape.NoFrame)
    area.setWidget(form.native)
    area.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
    area.setMinimumWidth(form.native.minimumSizeHint().width())  # only the height scrolls
    dock.native.layout().addWidget(area)
    dock.native.layout().setContentsMargins(0, 0, 0, 0)
    dock._form = form  # the magicgui form lives as long as its dock widget
    return form
