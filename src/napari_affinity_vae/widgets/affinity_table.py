"""The Train dock's affinity matrix: a small table of the classes, coloured as a heat map (blue
-1, dark 0, red 1), whose off-diagonal cells the user edits; the matrix stays symmetric and in
[-1, 1], with 1 on the diagonal."""

from __future__ import annotations

import numpy as np
import pandas as pd
from napari.utils.notifications import show_info
from psygnal import Signal
from qtpy.QtCore import Qt
from qtpy.QtGui import QColor
from qtpy.QtWidgets import QAbstractItemView, QHeaderView, QTableWidget, QTableWidgetItem

LOW, MIDDLE, HIGH = np.array([49, 99, 206]), np.array([38, 41, 48]), np.array([214, 64, 52])


def heat(value: float) -> QColor:
    """The colour of an affinity: from blue (-1) through napari's background (0) to red (1)."""
    end = HIGH if value >= 0 else LOW
    rgb = MIDDLE + (end - MIDDLE) * min(abs(value), 1.0)
    return QColor(*(int(c) for c in rgb))


class AffinityTable(QTableWidget):
    """Class-by-class affinities; ``edited`` is emitted after the user changes a cell."""

    edited = Signal()

    def __init__(self) -> None:
        super().__init__(0, 0)
        self.setEditTriggers(
            QAbstractItemView.EditTrigger.DoubleClicked
            | QAbstractItemView.EditTrigger.EditKeyPressed
            | QAbstractItemView.EditTrigger.AnyKeyPressed
        )
        self.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        self.setToolTip("How alike the classes are, -1 to 1: double-click a cell to edit it")
        self.setMaximumHeight(180)
        self._classes: list[str] = []
        self.itemChanged.connect(self._changed)

    @property
    def classes(self) -> list[str]:
        return list(self._classes)

    def set_matrix(self, matrix: pd.DataFrame) -> None:
        """Show ``matrix`` (square, labelled by class names)."""
        self._classes = [str(c) for c in matrix.columns]
        n = len(self._classes)
        self.blockSignals(True)
        self.setRowCount(n)
        self.setColumnCount(n)
        self.setHorizontalHeaderLabels(self._classes)
        self.setVerticalHeaderLabels(self._classes)
        for i in range(n):
            for j in range(n):
                item = QTableWidgetItem()
                if i == j:
                    item.setFlags(item.flags() & ~Qt.ItemFlag.ItemIsEditable)
                self.setItem(i, j, item)
                self._show(item, float(matrix.iloc[i, j]))
        self.blockSignals(False)

    def matrix(self) -> pd.DataFrame:
        """The matrix as shown."""
        n = len(self._classes)
        values = np.array(
            [
                [float(self.item(i, j).data(Qt.ItemDataRole.UserRole)) for j in range(n)]
                for i in range(n)
            ]
        ).reshape(n, n)
        return pd.DataFrame(values, index=self._classes, columns=self._classes)

    def _show(self, item: QTableWidgetItem, value: float) -> None:
        item.setData(Qt.ItemDataRole.UserRole, value)
        item.setText(f"{value:.2f}")
        item.setBackground(heat(value))
        item.setForeground(QColor("white"))
        item.setTextAlignment(Qt.AlignmentFlag.AlignCenter)

    def _changed(self, item: QTableWidgetItem) -> None:
        """A typed value (a decimal comma too), clipped to [-1, 1], mirrored; the old one back,
        with a message, if it is no number."""
        typed = item.text().strip()
        try:
            value = float(typed.replace(",", "."))
        except ValueError:
            value = np.nan
        if not np.isfinite(value):
            value = float(item.data(Qt.ItemDataRole.UserRole))
            show_info(f"{typed!r} is no number from -1 to 1: the affinity stays {value:.2f}")
        elif abs(value) > 1:
            show_info(f"Affinities lie in [-1, 1]: {typed} taken as {np.clip(value, -1, 1):g}")
        value = float(np.clip(value, -1.0, 1.0))
        self.blockSignals(True)
        self._show(item, value)
        self._show(self.item(item.column(), item.row()), value)
        self.blockSignals(False)
        self.edited.emit()
