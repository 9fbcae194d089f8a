"""The Embed dock widget: choose a model, encode the session's particles in the background, then
project the latents to 2D and cluster them, also in the background."""

from __future__ import annotations

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
    Label,
    LineEdit,
    PushButton,
    SpinBox,
)
from napari.utils.notifications import show_info, show_warning

from napari_affinity_vae.errors import AffinityVAEError
from napari_affinity_vae.model.bundled import BUNDLED_SPLAT, load_bundled
from napari_affinity_vae.model.checkpoint import ModelCard, load_checkpoint
from napari_affinity_vae.model.embedding import BATCH, embed_steps
from napari_affinity_vae.operations.analyse import ANALYSIS_STEPS, NOTES, analyse_steps
from napari_affinity_vae.operations.defaults import CLUSTERING, CLUSTERS, PROJECTION, SEED
from napari_affinity_vae.operations.embed_project import (
    FAILURES,
    SKIP_HINT,
    embed_project_steps,
    on_scheduler,
)
from napari_affinity_vae.schema import (
    CLUSTER,
    CROSSES_EDGE,
    EMBEDDING_X,
    derived_columns,
    latent_columns,
)
from napari_affinity_vae.text import count, sentence
from napari_affinity_vae.widgets.dialogs import scrolling, wrapping
from napari_affinity_vae.widgets.notify import errors_as_notifications, failure_message
from napari_affinity_vae.widgets.settings import remember
from napari_affinity_vae.widgets.tasks import Task
from napari_affinity_vae.widgets.viewer_session import session_for

BUNDLED, CHECKPOINT = "Bundled model", "Checkpoint file"
PRESETS = {BUNDLED: "bundled", "Bundled splat model": "bundled-splat"}  # choice: preset
PROJECTIONS = {"PCA": "pca", "UMAP": "umap", "t-SNE": "tsne"}
CLUSTERINGS = {"k-means": "kmeans", "Gaussian mixture": "gmm", "HDBSCAN": "hdbscan"}
STALE = "The particles changed while this ran; its result was discarded"
SKIP_IN_PROJECT_DOCK = (
    "tick 'Skip rows with NaN or outside the tomogram' in the Project dock and open it again "
    "to embed the others"
)


class EmbedWidget(Container):
    """Latent vectors, a 2D embedding and clusters for the session's particles."""

    def __init__(self, viewer: napari.viewer.Viewer) -> None:
        self.session = session_for(viewer)
        self.batch = BATCH
        shipped = [c for c in PRESETS if c == BUNDLED or BUNDLED_SPLAT.is_file()]
        self.source = ComboBox(label="Model", choices=[*shipped, CHECKPOINT], value=BUNDLED)
        self.source.tooltip = (
            "The bundled model (a convolutional decoder) separates classes best; the bundled "
            "splat model decodes Gaussian pseudo-atoms turned by a pose that is a rotation, "
            "shown as points and at any box size, and gives each particle model angles"
        )
        self.checkpoint = FileEdit(
            label="Checkpoint", mode="r", filter="Checkpoints (*.safetensors)", visible=False
        )
        self.card = wrapping(Label(label="Card", value=""))
        self.inverted = CheckBox(text="Protein bright (inverted contrast)", value=False)
        self.error = CheckBox(text="Reconstruction error (runs the decoder: slower)", value=True)
        self.error.tooltip = "Each box's error, to colour the scatter by; about 4x the work"
        self.scheduler = LineEdit(label="Dask scheduler", value="", visible=False)
        self.scheduler.tooltip = (
            "A project's tomograms are embedded on this Dask cluster (e.g. tcp://host:8786); "
            "empty: here. Its workers must see the tomograms at the same paths"
        )
        self.run_button = PushButton(text="Run")
        self.cancel_button = PushButton(text="Cancel", enabled=False)
        self.projection = ComboBox(
            label="Projection", choices=list(PROJECTIONS), value=_label(PROJECTIONS, PROJECTION)
        )
        self.clustering = ComboBox(
            label="Clustering", choices=list(CLUSTERINGS), value=_label(CLUSTERINGS, CLUSTERING)
        )
        self.k = SpinBox(label="Clusters (k)", min=1, max=100, value=CLUSTERS)
        self.seed = SpinBox(label="Seed", min=0, max=2**31 - 1, value=SEED)
        self.apply_button = PushButton(text="Project and cluster again")
        self.status = wrapping(Label(label="Status", value="not run"))
        super().__init__()
        scrolling(
            self,
            [
                self.source,
                self.checkpoint,
                self.card,
                self.inverted,
                self.error,
                self.scheduler,
                Container(widgets=[self.run_button, self.cancel_button], layout="horizontal"),
                self.projection,
                self.clustering,
                self.k,
                self.seed,
                self.apply_button,
                self.status,
            ],
        )
        self.task = Task(self.native)
        self.source.changed.connect(self.load_model)
        self.checkpoint.changed.connect(self.load_model)
        self.run_button.changed.connect(self.run)
        self.cancel_button.changed.connect(self.cancel)
        self.apply_button.changed.connect(self.project_and_cluster)
        self.clustering.changed.connect(lambda m: setattr(self.k, "enabled", m != "HDBSCAN"))
        self.task.running_changed.connect(self._show_running)
        self.inverted.changed.connect(lambda bright: setattr(self.session, "inverted", bright))
        self.session.particles_changed.connect(self._particles_changed)
        self.session.embed_requested.connect(self.embed_with)
        self.session.project_changed.connect(
            lambda: setattr(self.scheduler, "visible", self.session.project is not None)
        )
        remember(
            "embed",
            {
                "projection": self.projection,
                "clustering": self.clustering,
                "k": self.k,
                "seed": self.seed,
                "inverted": self.inverted,
                "error": self.error,
                "scheduler": self.scheduler,
            },
        )
        self.session.inverted = self.inverted.value  # as remembered
        self.load_model()

    def load_model(self, _value: object = None) -> bool:
        """Load the chosen model into the session and show its card; False if none loaded (the
        session then has no model, so Run never embeds with an earlier one)."""
        self.checkpoint.visible = self.source.value == CHECKPOINT
        self.session.set_model(None, None)
        self.card.tooltip = ""
        if self.source.value == CHECKPOINT and not Path(self.checkpoint.value).is_file():
            typed = str(self.checkpoint.value).strip()
            missing = f"{typed} is no file; " if typed not in ("", ".") else ""
            self.card.value = f"no model: {missing}choose a checkpoint file (.safetensors)"
            return False
        with errors_as_notifications("Loading the model"):
            if self.source.value in PRESETS:
                model, card = load_bundled(PRESETS[self.source.value])
            else:
                model, card = load_checkpoint(Path(self.checkpoint.value))
            described = f"{card.describe()}\nclasses: {', '.join(card.classes)}"
            tooltip = card.to_json()
            self.session.set_model(model, card)  # once its card reads, not one said not loaded
            self.card.value, self.card.tooltip = described, tooltip
            if self.status.value.startswith("failed"):  # that was another model's run
                self._particles_changed()
            return True
        self.card.value = "no model: the checkpoint did not load"
        return False

    def embed_with(self, checkpoint: Path) -> None:
        """Choose ``checkpoint`` as the model (a model just trained) and embed with it."""
        with self.source.changed.blocked(), self.checkpoint.changed.blocked():
            self.source.value = CHECKPOINT
            self.checkpoint.value = checkpoint
        if self.load_model():
            self.run()

    def run(self) -> None:
        """Extract and encode every particle in the background; then project and cluster."""
        session = self.session
        with errors_as_notifications("Embedding"):
            if session.model is None:
                raise AffinityVAEError("Choose a model that loads before embedding")
            if not len(session.particles) and (session.project or session.tomogram):
                raise AffinityVAEError("There are no particles to embed: import or pick some")
            if session.project is not None:
                self._run_project()
                return
            if session.tomogram is None:
                raise AffinityVAEError("Open a tomogram before embedding")
            version, tomogram = session.version, session.tomogram
            particles = session.particles.drop(columns=derived_columns(session.particles))
            model, card, inverted = session.model, session.card, self.inverted.value
            error = self.error.value
            self.status.value = f"embedding {count(len(particles), 'particle')}"
            self.task.start(
                lambda: embed_steps(tomogram, particles, model, card, self.batch, inverted, error),
                total=len(particles),
                desc="Embedding particles",
                on_result=lambda table: self._embedded(version, card, table),
                on_error=self._failed,
            )

    def _run_project(self) -> None:
        """Every tomogram's particles, one tomogram after another, in the background."""
        session = self.session
        version = session.version
        particles = session.particles.drop(columns=derived_columns(session.particles))
        project = replace(session.project, particles=particles)
        model, card, inverted = session.model, session.card, self.inverted.value
        error = self.error.value
        self.status.value = (
            f"embedding {count(len(particles), 'particle')} of "
            f"{count(len(project.tomograms), 'tomogram')}"
        )
        address = self.scheduler.value.strip()

        def steps(client: object = None):
            return embed_project_steps(
                project,
                model,
                card,
                batch=self.batch,
                inverted=inverted,
                error=error,
                client=client,
            )

        self.task.start(
            (lambda: on_scheduler(address, steps)) if address else steps,
            total=len(particles),
            desc="Embedding the project",
            on_result=lambda table: self._embedded(version, card, table, project.map),
            on_error=self._failed,
        )

    def cancel(self) -> None:
        if self.task.running:
            self.task.cancel()
            self.status.value = "cancelled"

    def _failed(self, error: BaseException) -> None:
        self.status.value = f"failed: {failure_message(error, 'the last step')}"

    def _embedded(
        self, version: int, card: ModelCard, table: pd.DataFrame, kind: str | None = None
    ) -> None:
        """Latents from ``card``'s model (recorded with them; in a project, the ``kind`` of map
        they were cut from too), then projected and clustered."""
        for name, why in table.attrs.get(FAILURES, {}).items():
            why = why.replace(SKIP_HINT, SKIP_IN_PROJECT_DOCK)
            show_warning(f"Tomogram {name} was not embedded: {why}")
        if not latent_columns(table):
            self.status.value = "failed: no tomogram could be embedded"
            return
        derived = table[derived_columns(table)]
        if not self.session.add_columns(version, derived, True, embedded_by=card):
            self.status.value = "discarded (stale)"
            show_info(STALE)
            return
        if self.session.project is not None:
            self.session.project.embedded_map = kind
        embedded = int(np.isfinite(self.session.latent[:, 0]).sum())  # edited since: not
        edges = int(table[CROSSES_EDGE].fillna(False).astype(bool).sum())
        self.status.value = (
            f"{embedded} embedded ({count(edges, 'box', 'boxes')} crossing the edge)"
        )
        self.project_and_cluster()

    def project_and_cluster(self) -> None:
        """The 2D embedding and the clusters of the current latents, in the background."""
        latent = self.session.latent
        with errors_as_notifications("Projecting and clustering"):
            if latent is None:
                raise AffinityVAEError("Run the embedding first")
            version = self.session.version
            settings = (
                PROJECTIONS[self.projection.value],
                CLUSTERINGS[self.clustering.value],
                self.k.value,
                self.seed.value,
            )
            self.status.value = f"{self.projection.value} and {self.clustering.value}"
            self.task.start(
                lambda: analyse_steps(latent, *settings),
                total=ANALYSIS_STEPS,
                desc="Projecting and clustering",
                on_result=lambda columns: self._analysed(version, columns),
                on_error=self._failed,
            )

    def _analysed(self, version: int, columns: pd.DataFrame) -> None:
        if not self.session.add_columns(version, columns):
            self.status.value = "discarded (stale)"
            show_info(STALE)
            return
        for note in columns.attrs.get(NOTES, []):
            show_info(sentence(note))
        self.status.value = embedded_summary(self.session.particles)  # edited since, too

    def _particles_changed(self) -> None:
        """Other particles (another tomogram's, or these again): what is known of them."""
        if not self.task.running:
            particles = self.session.particles
            known = self.session.latent is not None and EMBEDDING_X in particles
            self.status.value = embedded_summary(particles) if known else "not run"

    def _show_running(self, running: bool) -> None:
        self.run_button.enabled = self.apply_button.enabled = not running
        self.cancel_button.enabled = running and not self.task.cancelling


def embedded_summary(table: pd.DataFrame) -> str:
    """How many particles the scatter places (none of a tomogram that was not embedded), and in
    how many clusters."""
    found = table[CLUSTER][table[CLUSTER] >= 0].nunique() if CLUSTER in table else 0
    placed = int(table[EMBEDDING_X].notna().sum())
    of = f"{placed} of {len(table)} particles" if placed < len(table) else None
    return f"{of or count(placed, 'particle')}, {count(found, 'cluster')}"


def _label(labels: dict[str, str], method: str) -> str:
    """The label a method has in a combo box."""
    return next(label for label, name in labels.items() if name == method)
