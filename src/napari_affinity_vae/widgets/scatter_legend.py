"""The latent scatter's legend: the colour of each category (a link that selects it) or the
ends of a colour map, wrapping at the dock's width."""

from __future__ import annotations

from psygnal import Signal
from qtpy.QtCore import Qt
from qtpy.QtWidgets import QApplication, QLabel, QSizePolicy

LINK_STYLE = "color:{};text-decoration:none"


def legend_html(column: str, legend: list[tuple[str, str]], categorical: bool) -> str:
    """The legend's text: breaks between swatches, never inside one."""
    if not legend:
        return ""
    swatches = " &nbsp;".join(
        f'<a href="{label}" style="{LINK_STYLE.format(colour)}">&#9679;&nbsp;{label}</a>'
        if categorical
        else f'<span style="color:{colour}">&#9679;</span>&nbsp;{label}'
        for label, colour in legend
    )
    return f"<b>{column}</b>: {swatches}"


class Legend(QLabel):
    """A wrapping legend whose categories are links: ``clicked`` says which, and whether Shift
    was held (add to the selection)."""

    clicked = Signal(str, bool)

    def __init__(self) -> None:
        super().__init__()
        self.setWordWrap(True)
        self.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        self.setToolTip("Click a category to select its particles (Shift adds)")
        self.linkActivated.connect(self._activated)

    def show_legend(self, column: str, legend: list[tuple[str, str]], categorical: bool) -> None:
        self.setText(legend_html(column, legend, categorical))

    def _activated(self, label: str) -> None:
        shift = QApplication.keyboardModifiers() & Qt.KeyboardModifier.ShiftModifier
        self.clicked.emit(label, bool(shift))
