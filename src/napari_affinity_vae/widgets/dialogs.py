"""Small Qt helpers the dock widgets share: a yes/no question and labels that wrap instead of
widening the window."""

from __future__ import annotations

from magicgui.widgets import Label
from qtpy.QtWidgets import QInputDialog, QMessageBox, QSizePolicy, QWidget


def confirm(parent: QWidget | None, title: str, question: str) -> bool:
    """Ask a yes/no question in a modal dialog; No is the default."""
    buttons = QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No
    box = QMessageBox(QMessageBox.Icon.Question, title, question, buttons, parent)
    box.setDefaultButton(QMessageBox.StandardButton.No)
    return box.exec() == QMessageBox.StandardButton.Yes


def choose(parent: QWidget | None, title: str, question: str, items: list[str]) -> str | None:
    """Ask the user to choose one of ``items`` in a modal dialog; None if they cancel."""
    choice, accepted = QInputDialog.getItem(parent, title, question, items, 0, False)
    return choice if accepted else None


def wrapping(label: Label) -> Label:
    """Let ``label`` wrap its text at the dock's width, however long the text, rather than make
    the dock (and the window) wider."""
    label.native.setWordWrap(True)
    label.native.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
    return label
