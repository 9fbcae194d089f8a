"""The Train dock widget: train a model on the particles labelled in the explorer, from scratch
or fine-tuning the current model, in the background, with the loss terms and a picture of the
held-out particles' latent space redrawn every epoch. Cancel keeps the best epoch so far; Save
writes safetensors and a model card; "Use this model" embeds every particle with it."""

from __future__ import annotations

import contextlib
import copy
import threading
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import napari
import numpy as np
import pandas as pd
from magicgui.widgets import (
    CheckBox,
    ComboBox,
    Container,
    FileEdit,
    FloatSpinBox,
    Label,
    PushButton,
    SpinBox,
)
from napari.utils.notifications import show_info
from qtpy.QtWidgets import QFileDialog

from napari_affinity_vae.colours import colours_for
from napari_affinity_vae.errors import AffinityVAEError
from napari_affinity_vae.io.affinity import load_affinity
from napari_affinity_vae.model.bundled import BUNDLED, preset_name
from napari_affinity_vae.model.checkpoint import ModelCard, checkpoint_files, save_checkpoint
from napari_affinity_vae.model.datasets import CLASS_COLUMNS
from napari_affinity_vae.model.losses import SCHEDULES, Schedule
from napari_affinity_vae.model.network import AffinityVAE
from napari_affinity_vae.model.train import (
    TrainingConfig,
    TrainingData,
    new_model,
    sized_for,
    training_card,
)
from napari_affinity_vae.operations.labelled import (
    centre_affinity,
    check_labels,
    class_counts,
    default_affinity,
    labelled_boxes,
    reference_affinity,
)
from napari_affinity_vae.operations.training import TrainedRun, TrainingUpdate, training_steps
from napari_affinity_vae.schema import AXES, LABEL, TOMO_NAME, latent_columns
from napari_affinity_vae.session import NOT_EMBEDDED_BY_MODEL, Session
from napari_affinity_vae.simulate.molecules import named_references
from napari_affinity_vae.text import count
from napari_affinity_vae.widgets.affinity_table import AffinityTable
from napari_affinity_vae.widgets.dialogs import confirm, scrolling, wrapping
from napari_affinity_vae.widgets.loss_plot import LossPlot
from napari_affinity_vae.widgets.notify import (
    errors_as_notifications,
    failure_message,
    typed_path,
    warnings_as_notifications,
)
from napari_affinity_vae.widgets.scatter_canvas import ScatterCanvas
from napari_affinity_vae.widgets.scatter_legend import Legend
from napari_affinity_vae.widgets.settings import remember
from napari_affinity_vae.widgets.tasks import Task
from napari_affinity_vae.widgets.viewer_session import session_for

FINE_TUNE, SCRATCH = "Fine-tune the current model", "Train from scratch"
LABEL_COLUMNS = tuple(dict.fromkeys((LABEL, *CLASS_COLUMNS)))  # the user's first, then a file's
COMMAND = "trained in napari (Train dock)"
AN_AFFINITY = "An affinity"  # what labels of two classes are needed for, besides training
MAP_PATTERNS = " ".join(
    f"*{s}{z}" for s in (".mrc", ".map", ".pdb", ".cif") for z in ("", ".gz", ".bz2")
)


class TrainWidget(Container):
    """Train or fine-tune on the session's labelled particles."""

    def __init__(self, viewer: napari.viewer.Viewer) -> None:
        self.session = session_for(viewer)
        self.labels_from = ComboBox(label="Labels from", choices=[LABEL], value=LABEL)
        self.classes = wrapping(Label(value=""))
        self.affinity = AffinityTable()
        self.centres_button = PushButton(text="From class centres")
        self.centres_button.tooltip = (
            "Affinity from what the model decodes for each class's mean latent, compared over "
            "rotations (embed the particles first)"
        )
        self.maps_button = PushButton(text="From maps...")
        self.maps_button.tooltip = (
            "Affinity from a reference map (MRC) or atomic model (PDB/mmCIF) per class, each file "
            "named after its class, compared over rotations as avae affinity does"
        )
        self.load_button = PushButton(text="Load CSV...")
        self.load_button.tooltip = "An affinity CSV (avae affinity writes one from maps or models)"
        self.start = ComboBox(label="Start", choices=[FINE_TUNE, SCRATCH], value=FINE_TUNE)
        self.epochs = SpinBox(label="Epochs", min=1, max=1000, value=10)
        self.learning_rate = FloatSpinBox(
            label="Learning rate", min=1e-6, max=0.1, step=1e-4, value=1e-3
        )
        self.learning_rate.native.setDecimals(6)
        self.beta = FloatSpinBox(label="Beta (KL)", min=0, max=10, step=1e-3, value=1e-3)
        self.beta.native.setDecimals(5)
        self.beta_schedule = ComboBox(
            label="Beta schedule", choices=list(SCHEDULES), value="cyclical_linear"
        )
        self.gamma = FloatSpinBox(label="Gamma (affinity)", min=0, max=100, step=0.1, value=1.0)
        self.gamma_schedule = ComboBox(
            label="Gamma schedule", choices=list(SCHEDULES), value="flat"
        )
        self.tc = FloatSpinBox(label="TC (total correlation)", min=0, max=100, step=0.05, value=0)
        self.tc.tooltip = (
            "Weight of the beta-TCVAE term, which pushes latent dimensions to be independent "
            "(more interpretable); 0: off"
        )
        self.latent_dims = SpinBox(label="Latent dimensions", min=2, max=64, value=8)
        self.augment = CheckBox(text="Rotate boxes at random (augmentation)", value=True)
        self.validation = FloatSpinBox(label="Validation", min=0, max=0.5, step=0.05, value=0.2)
        self.validation.tooltip = (
            "The share of each class held out, to watch for overfitting (rounded down: a class "
            "of fewer than 5 particles at 0.2 is trained on whole)"
        )
        self.seed = SpinBox(label="Seed", min=0, max=2**31 - 1, value=0)
        self.train_button = PushButton(text="Train")
        self.cancel_button = PushButton(text="Cancel", enabled=False)
        self.status = wrapping(Label(value="Label particles in the Latent scatter, then Train"))
        self.losses = LossPlot()
        self.preview = ScatterCanvas()
        self.preview.canvas.native.setMinimumSize(200, 200)
        self.legend = Legend()
        self.legend.setToolTip(
            "The classes of the particles in the preview: those held out, or all of them when "
            "some class has none held out"
        )
        self.file = FileEdit(label="Save as", mode="w", filter="Checkpoints (*.safetensors)")
        self.save_button = PushButton(text="Save", enabled=False)
        self.use_button = PushButton(text="Use this model", enabled=False)
        self.use_button.tooltip = "Save, then embed every particle with this model"
        super().__init__()
        form = scrolling(
            self,
            [
                self.labels_from,
                self.classes,
                Container(
                    widgets=[self.centres_button, self.maps_button, self.load_button],
                    layout="horizontal",
                ),
                self.start,
                self.epochs,
                self.learning_rate,
                self.beta,
                self.beta_schedule,
                self.gamma,
                self.gamma_schedule,
                self.tc,
                self.latent_dims,
                self.augment,
                self.validation,
                self.seed,
                Container(widgets=[self.train_button, self.cancel_button], layout="horizontal"),
                self.status,
                self.file,
                Container(widgets=[self.save_button, self.use_button], layout="horizontal"),
            ],
        )
        layout = form.native.layout()
        layout.insertWidget(3, self.affinity)
        layout.insertWidget(layout.count() - 3, self.losses.canvas.native)
        layout.insertWidget(layout.count() - 3, self.preview.canvas.native)
        layout.insertWidget(layout.count() - 3, self.legend)
        self.task = Task(self.native, self.cancel)  # its panel closed: the best epoch kept
        self.history: list[dict] = []
        self.best_weights: dict | None = None
        self.best_epoch = 0
        self.trained: tuple[AffinityVAE, ModelCard] | None = None
        self.saved: Path | None = None
        self._training: tuple[TrainingData, TrainingConfig, str, AffinityVAE] | None = None
        self._job = "training"  # what the task runs: "training" or "the affinity"
        self._labels_trained: tuple[str, pd.Series] | None = None  # the last run's column, counts
        self.labels_from.changed.connect(self._show_classes)
        self.start.changed.connect(self._show_start)
        self.centres_button.changed.connect(self.affinity_from_centres)
        self.maps_button.changed.connect(self._choose_maps)
        self.load_button.changed.connect(self._choose_affinity_file)
        self.train_button.changed.connect(self.train)
        self.cancel_button.changed.connect(self.cancel)
        self.save_button.changed.connect(self.save)
        self.use_button.changed.connect(self.use)
        self.task.running_changed.connect(self._show_running)
        self.session.particles_changed.connect(self._refresh_columns)
        self.session.labels_changed.connect(self._refresh_columns)
        self.affinity.edited.connect(self._keep_affinity)
        self.session.model_changed.connect(self._show_classes)
        self.session.map_changed.connect(self._show_classes)  # a tomogram may lack the map
        remember(
            "train",
            {
                "start": self.start,
                "epochs": self.epochs,
                "learning_rate": self.learning_rate,
                "beta": self.beta,
                "beta_schedule": self.beta_schedule,
                "gamma": self.gamma,
                "gamma_schedule": self.gamma_schedule,
                "tc": self.tc,
                "latent_dims": self.latent_dims,
                "augment": self.augment,
                "validation": self.validation,
                "seed": self.seed,
            },
        )
        self._show_start()
        self._refresh_columns()
        self._restore_run()

    def _restore_run(self) -> None:
        """The run kept before the dock was closed, shown as it was left: its loss curves, its
        model ready to save and use."""
        run = self.session.trained_run
        if run is None:
            return
        self.trained, self.history, self.saved = (run.model, run.card), run.history, run.saved
        self.best_epoch = run.card.training.get("best_epoch", 0)
        self.losses.show(self.history)
        self.save_button.enabled = self.use_button.enabled = True
        self.status.value = run.status

    # -- classes and their affinity --------------------------------------------------------------
    def _refresh_columns(self) -> None:
        table = self.session.particles
        choices = [c for c in LABEL_COLUMNS if c in table and table[c].notna().any()] or [LABEL]
        current, offered = self.labels_from.value, self.labels_from.choices
        if current not in choices or (LABEL in choices and LABEL not in offered):
            current = choices[0]  # the user's labels, as soon as there are some
        with self.labels_from.changed.blocked():
            self.labels_from.choices = ()
            self.labels_from.choices = choices
            self.labels_from.value = current
        self._show_classes()

    def _unopenable(self) -> np.ndarray:
        """The rows of a project's tomograms that cannot be opened (file missing or broken, or
        without the map chosen): their boxes cannot be cut (by the session's rows per tomogram,
        grouped once)."""
        project = self.session.project
        tomograms = project.tomograms.items() if project is not None else ()
        rows = [
            self.session.rows_of(n)
            for n, e in tomograms
            if e.problem or e.path is None or e.lacks(project.map)
        ]
        return np.concatenate(rows) if rows else np.zeros(0, dtype=np.int64)

    def _trainable(self) -> pd.DataFrame:
        """The particles whose boxes can be cut."""
        table, rows = self.session.particles, self._unopenable()
        return table.drop(index=table.index[rows]) if len(rows) else table

    def _labels_changed(self) -> bool:
        """Whether the classes the last run read (their counts) are no longer those labelled:
        points added without a label, or another column chosen, change nothing."""
        if self._labels_trained is None:
            return False
        column, counts = self._labels_trained
        table = self._trainable()
        now = class_counts(table[column]) if column in table else counts.iloc[:0]
        return not now.equals(counts)

    def _label_values(self, table: pd.DataFrame | None = None) -> pd.Series:
        """The labels of the particles that can be trained on (of ``table`` if given)."""
        table = self._trainable() if table is None else table
        column = self.labels_from.value
        return table[column] if column in table else pd.Series([], dtype=object)

    def _show_classes(self, _value: object = None) -> None:
        """The classes labelled, their counts, and an affinity table for exactly them (values
        the user set for classes still there are kept)."""
        counts = class_counts(self._label_values())
        classes = [str(c) for c in counts.index]
        if not classes:
            self.classes.value = (
                "No particles labelled yet: label a selection in the Latent scatter"
            )
        else:
            parts = ", ".join(f"{c} ({n})" for c, n in counts.items())
            self.classes.value = f"{count(len(classes), 'class', 'classes')}: {parts}"
        left = class_counts(self._label_values(self.session.particles.iloc[self._unopenable()]))
        left = left.sum()
        if left:
            self.classes.value += (
                f"; {count(int(left), 'particle')} labelled in tomograms that cannot be opened "
                "(or lack the map chosen) left out"
            )
        if classes != self.affinity.classes:
            matrix = default_affinity(classes, self.session.card)
            before = self.session.affinity  # the table as the user left it, the dock closed
            before = self.affinity.matrix() if before is None else before
            kept = [c for c in classes if c in before.index]
            if len(kept) > 1:
                known = before.loc[kept, kept]
                matrix.loc[kept, kept] = known.where(known.notna(), matrix.loc[kept, kept])
            self._set_affinity(matrix)

    def _set_affinity(self, matrix: pd.DataFrame) -> None:
        self.affinity.set_matrix(matrix)
        self._keep_affinity()

    def _keep_affinity(self) -> None:
        """The table, edited or set, outlives the dock (closed and opened again, it is there)
        and its classes: one unlabelled and labelled again gets its values back (NaN: a pair
        never shown together)."""
        table, known = self.affinity.matrix(), self.session.affinity
        if known is not None:
            names = list(dict.fromkeys([*known.index, *table.index]))
            table = table.combine_first(known).loc[names, names]
        self.session.affinity = table

    def affinity_from_centres(self, _value: object = None) -> None:
        """Fill the affinity table from the decoded class centres, in the background."""
        with errors_as_notifications("Affinity from class centres"):
            session = self.session
            if session.model is None:
                raise AffinityVAEError("Choose a model in the Embed widget first")
            if session.latent is not None and not session.embedded_with(session.card):
                raise AffinityVAEError(NOT_EMBEDDED_BY_MODEL)
            column = self.labels_from.value
            particles = _read_by_job(self.session.particles, column)
            classes = check_labels(self._label_values(), AN_AFFINITY)
            model, stop = self.session.model, threading.Event()
            self._start_affinity(
                lambda: centre_affinity(particles, column, model, stop.is_set),
                len(classes),
                "affinity from the decoded class centres",
                stop,
            )

    def _choose_maps(self, _value: object = None) -> None:
        paths, _ = QFileDialog.getOpenFileNames(
            self.native, "A map or model per class", "", f"Maps and models ({MAP_PATTERNS})"
        )
        if paths:
            self.affinity_from_maps([Path(p) for p in paths])

    def affinity_from_maps(self, paths: list[Path]) -> None:
        """Fill the affinity table from a map or model per class, in the background."""
        with errors_as_notifications("Affinity from maps"):
            classes = check_labels(self._label_values(), AN_AFFINITY)
            references = named_references(paths)
            voxel_size = self.session.card.voxel_size if self.session.card else 10.0
            stop = threading.Event()
            steps = reference_affinity(references, classes, voxel_size, stop.is_set)
            self._start_affinity(
                lambda: steps, len(classes), "affinity from the reference maps", stop
            )

    def _start_affinity(
        self, steps: Callable, classes: int, source: str, stop: threading.Event
    ) -> None:
        """Search the affinity of every pair of ``classes`` in the background; Cancel sets
        ``stop``, which ends the search within the pair under way."""
        pairs = classes * (classes - 1) // 2
        self.status.value = f"comparing {count(pairs, 'pair')} of classes"
        self._job = "the affinity"
        self.task.start(
            steps,
            total=pairs,
            desc="Affinity",
            on_result=lambda matrix: self._affinity_found(matrix, source),
            on_error=self._failed,
            stop=stop,
        )

    def _affinity_found(self, found: pd.DataFrame, source: str) -> None:
        """The affinities found go into the table for the classes labelled now: one labelled
        while they were found keeps its row, one unlabelled meanwhile is not brought back."""
        matrix = self.affinity.matrix()
        kept = [c for c in matrix.columns if c in found.columns]
        matrix.loc[kept, kept] = found.loc[kept, kept].to_numpy()
        self._set_affinity(matrix)
        since = [c for c in matrix.columns if c not in found.columns]
        self.status.value = source
        if since:
            has = "has" if len(since) == 1 else "have"
            self.status.value += (
                f"; {', '.join(since)}, labelled since, {has} the default affinities"
            )

    def _choose_affinity_file(self, _value: object = None) -> None:
        path, _ = QFileDialog.getOpenFileName(
            self.native, "Affinity matrix", "", "Affinity CSV (*.csv)"
        )
        if path:
            self.load_affinity(Path(path))

    def load_affinity(self, path: Path) -> None:
        """Take the affinities of the labelled classes from an affinity CSV (a warning, such
        as a matrix made symmetric, shown each time)."""
        with errors_as_notifications("Loading the affinity"), warnings_as_notifications():
            table = load_affinity(path)
            classes = self.affinity.classes
            if not classes:
                raise AffinityVAEError(
                    f"{path.name} was not read: label classes first (the affinities of the "
                    "labelled classes are taken from it)"
                )
            missing = [c for c in classes if c not in table.columns]
            if missing:
                raise AffinityVAEError(f"{path}: no affinity for class(es) {', '.join(missing)}")
            self._set_affinity(table.loc[classes, classes])
            self.status.value = f"affinity from {path.name}"

    # -- training --------------------------------------------------------------------------------
    def _config(self, card: ModelCard) -> TrainingConfig:
        """The fields' settings, with the pose consistency ``card``'s model was trained with (a
        splat model's pose stays tied to orientation)."""
        trained = TrainingConfig.from_dict(card.training.get("config", {}))
        return TrainingConfig(
            pose=trained.pose,
            epochs=self.epochs.value,
            learning_rate=self.learning_rate.value,
            beta=Schedule(self.beta_schedule.value, high=self.beta.value),
            gamma=Schedule(self.gamma_schedule.value, high=self.gamma.value),
            tc=Schedule("flat", high=self.tc.value),
            validation_fraction=self.validation.value,
            seed=self.seed.value,
            augment=self.augment.value,
        )

    def train(self, _value: object = None) -> None:
        """Cut the labelled particles' boxes, then train, both in the background."""
        session = self.session
        with errors_as_notifications("Training"):
            if session.model is None or session.card is None:
                raise AffinityVAEError(
                    "Choose a model in the Embed widget first: its box and voxel size are used"
                )
            if session.project is None and session.tomogram is None:
                raise AffinityVAEError("Open a tomogram or a project first")
            column = self.labels_from.value
            particles = _read_by_job(self._trainable(), column)
            if check_labels(self._label_values()) != self.affinity.classes:
                raise AffinityVAEError(
                    "The affinity table is not of the classes labelled: label again or wait "
                    "for the affinity to be found"
                )
            if session.project is not None:
                opener = session.project.boxes_from
            else:
                tomogram = session.tomogram
                opener = lambda _name: tomogram  # noqa: E731
            card, affinity = session.card, self.affinity.matrix()
            if self.start.value == FINE_TUNE:
                model, init = copy.deepcopy(session.model), _model_name(card)
            else:
                architecture = replace(card.architecture, latent_dims=self.latent_dims.value)
                model, init = new_model(architecture, self.seed.value), ""
            config = self._config(card)
            where = _training_source(session)
            self._forget_run()
            self._job = "training"
            self._labels_trained = (column, class_counts(particles[column]))  # if relabelled
            self.status.value = "cutting the labelled particles' boxes"

            def boxes_cut(data: TrainingData) -> None:
                data.affinity = affinity.loc[data.classes, data.classes].to_numpy()
                data.description = f"{data.description}, from {where}"
                self._start_training(data, sized_for(config, data.labels), init, model)

            self.task.start(
                lambda: labelled_boxes(particles, column, opener, card, session.inverted),
                total=int(self._label_values().notna().sum()),
                desc="Cutting boxes",
                on_result=boxes_cut,
                on_error=self._failed,
            )

    def _start_training(
        self, data: TrainingData, config: TrainingConfig, init: str, model: AffinityVAE
    ) -> None:
        self._training = (data, config, init, model)
        self.status.value = (
            f"training on {count(len(data.boxes), 'particle')}, in batches of {config.batch_size}"
        )
        stop = threading.Event()  # Cancel ends the epoch under way, not only the next
        self.task.start(
            lambda: training_steps(data, model, config, stop.is_set),
            total=config.epochs,
            desc="Training",
            on_result=lambda _: self._keep_best(f"trained {count(len(self.history), 'epoch')}"),
            on_error=self._failed,
            on_yield=self._epoch_done,
            stop=stop,
        )

    def _forget_run(self) -> None:
        """A new run starts: the last run's epochs and model are no longer the ones shown."""
        self._training = None
        self.history, self.best_weights, self.best_epoch = [], None, 0
        self.trained, self.saved, self.session.trained_run = None, None, None
        self.save_button.enabled = self.use_button.enabled = False
        self.losses.show([])  # not the last run's curves and map under this run's status
        self.preview.show_points(np.zeros((0, 2)))
        self.preview.show_view(False, False)
        self.legend.setText("")

    def _epoch_done(self, update: TrainingUpdate) -> None:
        self.history = update.history
        if update.best_weights is not None:
            self.best_weights, self.best_epoch = update.best_weights, update.row["epoch"]
        self.losses.show(self.history)
        self._show_preview(update)
        row = update.row
        val = f", validation {row['val_loss']:.4g}" if "val_loss" in row else ""
        self.status.value = (
            f"epoch {row['epoch']} of {self._training[1].epochs}: loss {row['loss']:.4g}{val}"
        )

    def _show_preview(self, update: TrainingUpdate) -> None:
        names = pd.Series(np.asarray(self._training[0].classes)[update.preview_labels])
        colours, legend = colours_for(names, known=self.session.known_categories(LABEL))
        self.preview.show_points(update.preview)
        self.preview.colour_points(update.preview, colours)
        self.preview.show_view(True, False)
        title = "held out" if update.preview_held_out else "all particles"
        if not update.preview_held_out and "val_loss" not in update.row:
            title += " (trained on)"  # else a few held out, too few to show alone
        self.legend.show_legend(title, legend, False)

    def cancel(self, _value: object = None) -> None:
        """Stop training (the best epoch so far is kept) or the affinity's search (the table
        stays as it was)."""
        if not self.task.running:
            return
        self.task.cancel()
        if self._job == "the affinity":
            self.status.value = "affinity cancelled: the table is as it was"
            return
        if self._training is None:
            self.status.value = "cancelled before training (while cutting boxes)"
            return
        if self.best_weights is None:
            self.status.value = "cancelled before an epoch finished"
            return
        self._keep_best(f"cancelled after {count(len(self.history), 'epoch')}")

    def _keep_best(self, what: str) -> None:
        """The model as it was at the best epoch, ready to save and use."""
        if self._training is None or self.best_weights is None:
            return
        data, config, init, model = self._training
        best = AffinityVAE(model.architecture)
        best.load_state_dict(self.best_weights)
        best.eval()
        card = training_card(best, data, config, self.history, COMMAND, init)
        card.training["best_epoch"] = self.best_epoch
        self.trained = (best, card)
        self.save_button.enabled = self.use_button.enabled = True
        loss = "validation" if "val_loss" in self.history[-1] else "training"  # none held out
        self.status.value = f"{what}; kept epoch {self.best_epoch} (the best {loss} loss)"
        if self._labels_changed():
            self.status.value += "; trained on the labels as they were: train again for the new"
        self.session.trained_run = TrainedRun(best, card, self.history, self.status.value)

    def _failed(self, error: BaseException) -> None:
        self.status.value = f"failed: {failure_message(error, self._job)}"

    # -- the trained model -----------------------------------------------------------------------
    def save(self, _value: object = None) -> Path | None:
        """Write the kept model to the Save as file; return its path (None if not written)."""
        with errors_as_notifications("Saving the model"):
            if self.trained is None:
                raise AffinityVAEError("Train a model first")
            path = typed_path(self.file.value, "to save the model to", "Save as")
            if path.is_dir():  # before its files are named: "/" names none
                raise AffinityVAEError(f"{path} is a folder: type another name (Save as)")
            weights, card_file = checkpoint_files(path)
            for taken in (weights, card_file):
                if taken.is_dir():
                    raise AffinityVAEError(f"{taken} is a folder: type another name (Save as)")
            if not weights.parent.is_dir():
                raise AffinityVAEError(f"{weights.parent} is no folder: choose one that exists")
            existing = [f.name for f in (weights, card_file) if f.exists()]
            question = f"{' and '.join(existing)} {'exist' if len(existing) > 1 else 'exists'}."
            replacing = self.saved != weights and existing
            if replacing and not confirm(self.native, "Replace?", f"{question} Replace?"):
                return None
            model, card = self.trained
            written, card_path = save_checkpoint(model, card, weights)
            card.path = card_path
            self.saved = written
            if self.session.trained_run is not None:
                self.session.trained_run.saved = written
            show_info(f"Saved {written} and its model card")
            return written
        return None

    def use(self, _value: object = None) -> None:
        """Save the model (unless saved as the Save as file already), then have every particle
        embedded with it (Embed widget)."""
        named = None
        with contextlib.suppress(AffinityVAEError):  # an empty field: save() says so
            named = checkpoint_files(typed_path(self.file.value, "", "Save as"))[0]
        path = self.saved if self.saved is not None and self.saved == named else self.save()
        if path is not None:
            self.session.embed_requested.emit(path)

    # -- state ----------------------------------------------------------------------------------
    def _show_start(self, _value: object = None) -> None:
        self.latent_dims.visible = self.start.value == SCRATCH

    def _show_running(self, running: bool) -> None:
        for button in (self.train_button, self.centres_button, self.maps_button, self.load_button):
            button.enabled = not running
        self.cancel_button.enabled = running and not self.task.cancelling


def _read_by_job(particles: pd.DataFrame, column: str) -> pd.DataFrame:
    """A copy of what a background job reads of the particles (labels, tomograms, positions,
    latents): the user may label particles meanwhile, which changes the table in place."""
    read = [c for c in (column, TOMO_NAME, *AXES, *latent_columns(particles)) if c in particles]
    return particles[read].copy()


def _training_source(session: Session) -> str:
    """Where the labelled particles come from, in the card's words: the project's files and
    size (and the kind of map chosen), or the tomogram."""
    project = session.project
    if project is None:
        return f"tomogram {session.tomogram.name}"
    files, summary = ", ".join(p.name for p in project.sources), project.summary()
    summary += f", {project.map} maps" if project.map else ""
    return f"project {files} ({summary})" if files else f"a project of {summary}"


def _model_name(card: ModelCard) -> str:
    """What a fine-tuned card records as its starting point: a bundled model's preset name
    ("bundled", "bundled-splat") or the checkpoint."""
    weights = checkpoint_files(card.path)[0] if card.path else BUNDLED
    return preset_name(weights) or str(weights)
