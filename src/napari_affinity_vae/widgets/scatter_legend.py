"""The latent scatter's legend: the colour of each category (a link that selects it) or the
ends of a colour map, wrapping at the dock's width."""

from __future__ import annotations

import html
from urllib.parse import quote, unquote

from psygnal import Signal
from qtpy.QtCore import Qt
from qtpy.QtWidgets import QApplication, QLabel, QSizePolicy

LINK_STYLE = "color:{};text-decoration:none"
MISSING_LINK = "#missing"  # the link of the particles without a value (no label's link: quoted)


def legend_html(
    column: str, legend: list[tuple[str, str]], categorical: bool, missing_last: bool = False
) -> str:
    """The legend's text: breaks between swatches, never inside one; names shown as typed (not
    read as markup). ``missing_last``: the last category stands for missing values."""
    if not legend:
        return ""
    links = [quote(label, safe="") for label, _ in legend]
    names = [html.escape(label) for label, _ in legend]
    if missing_last:  # in italics: no name typed, whatever names were
        links[-1], names[-1] = MISSING_LINK, f"<i>{names[-1]}</i>"
    swatches = " &nbsp;".join(
        f'<a href="{link}" style="{LINK_STYLE.format(colour)}">&#9679;&nbsp;{name}</a>'
        if categorical
        else f'<span style="color:{colour}">&#9679;</span>&nbsp;{name}'
        for (_, colour), name, link in zip(legend, names, links, strict=True)
    )
    return f"<b>{html.escape(column)}</b>: {swatches}"


class Legend(QLabel):
    """A wrapping legend whose categories are links: ``clicked`` says which (None: the missing
    values), and whether Shift was held (add to the selection)."""

    clicked = Signal(object, bool)

    def __init__(self) -> None:
        super().__init__()
        self.setWordWrap(True)
        self.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        self.setToolTip("Click a category to select its particles (Shift adds)")
        self.linkActivated.connect(self._activated)

    def show_legend(
        self,
        column: str,
        legend: list[tuple[str, str]],
        categorical: bool,
        missing_last: bool = False,
    ) -> None:
        self.setText(legend_html(column, legend, categorical, missing_last))

    def _activated(self, link: str) -> None:
        shift = QApplication.keyboardModifiers() & Qt.KeyboardModifier.ShiftModifier
        self.clicked.emit(None if link == MISSING_LINK else unquote(link), bool(shift))
