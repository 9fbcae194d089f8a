"""The Decode dock widget: decode a particle, the selection's mean or a cluster centre into a
volume shown in the viewer (with a splat model's Gaussians as points, rendered at any box); traverse
the latent space with one slider per dimension, and turn a splat model's decode with rotation
sliders; explain a selection by the few latent dimensions that set it apart, as an equation with
its accuracy against every dimension's; fit a column of the particle table as a short formula of
the latents."""

from __future__ import annotations

import napari
import numpy as np
from magicgui.widgets import (
    ComboBox,
    Container,
    FloatSlider,
    FloatSpinBox,
    Label,
    PushButton,
    SpinBox,
)
from napari.layers import Image

from napari_affinity_vae.analysis.explain import (
    ColumnFit,
    Dimension,
    Explanation,
    explain_selection,
)
from napari_affinity_vae.errors import AffinityVAEError
from napari_affinity_vae.model.checkpoint import ModelCard
from napari_affinity_vae.model.splats import angles_pose, pose_angles, turns_pose
from napari_affinity_vae.operations.decode import CENTRE as CENTRE_SOURCE
from napari_affinity_vae.operations.decode import MEAN as MEAN_SOURCE
from napari_affinity_vae.operations.decode import PARTICLE as PARTICLE_SOURCE
from napari_affinity_vae.operations.decode import (
    Decoded,
    decode_volumes,
    is_splat,
    source_vector,
    traversal,
)
from napari_affinity_vae.operations.explain import fit_particle_column, fittable_columns
from napari_affinity_vae.schema import AXES, TOMO_NAME
from napari_affinity_vae.session import NOT_EMBEDDED_BY_MODEL
from napari_affinity_vae.widgets.dialogs import scrolling, wrapping
from napari_affinity_vae.widgets.notify import errors_as_notifications
from napari_affinity_vae.widgets.splat_layer import show_splats, splats_name
from napari_affinity_vae.widgets.tasks import Task, one_step
from napari_affinity_vae.widgets.viewer_session import (
    DECODED_KEY,
    active_layer_kept,
    fit_view,
    session_for,
    tomogram_identity,
    view_centre,
)

PARTICLE, MEAN, CENTRE = "Selected particle", "Selection mean", "Cluster centre"
SOURCES = {PARTICLE: PARTICLE_SOURCE, MEAN: MEAN_SOURCE, CENTRE: CENTRE_SOURCE}
AT_PARTICLE, BESIDE = "At the particle", "Beside the tomogram"
PLACED_FOR = "placed for"  # a decoded volume's metadata: the tomogram (and voxel size) placing it
TRAVERSAL_AXIS = "traversal step"  # the label of the slider that walks a traversal
BESIDE_SHARE = 0.75  # a volume beside the tomogram spans this share of the tomogram's height
ISO_SIGMAS = 2.0  # default isosurface: mean + this many standard deviations
DECODED = "decoded"
NOTHING_SEPARATES = "no latent dimension separates the selection better than chance"
ROTATION = {"rot": (-180.0, 180.0), "tilt": (0.0, 180.0), "psi": (-180.0, 180.0)}  # degrees
MAX_RENDER = 4  # a splat model renders at most this many times its box a side


class DecodeWidget(Container):
    """Decoded volumes of points in the latent space, and what separates a selection."""

    def __init__(self, viewer: napari.viewer.Viewer) -> None:
        self._viewer = viewer
        self.session = session_for(viewer)
        self._anchor: int | None = None  # the row whose position places the volume
        self._pending = False  # a decode was asked for while one ran
        self._decoding = ""  # the name of the decode running (or run last)
        self._built: tuple = (None, None, None)  # the latent, pose and card of the sliders
        self._angles = False  # the pose sliders are a rotation's angles
        self.source = ComboBox(label="Decode", choices=[PARTICLE, MEAN, CENTRE], value=MEAN)
        self.cluster = SpinBox(label="Cluster", min=0, max=999, visible=False)
        self.placement = ComboBox(label="Show", choices=[AT_PARTICLE, BESIDE], value=BESIDE)
        self.iso_level = FloatSpinBox(
            label="Surface at (SD)", min=-5.0, max=10.0, step=0.25, value=ISO_SIGMAS
        )
        self.iso_level.tooltip = (
            "The isosurface of decoded volumes in the volume view: this many standard "
            "deviations above the volume's mean"
        )
        self.render_box = SpinBox(label="Render at", visible=False)
        self.render_box.tooltip = (
            "Voxels a side a splat model renders the volume at: more than its box is sharper, "
            "at the same physical size"
        )
        self.render_box.native.setKeyboardTracking(False)  # one decode once typed, not per key
        self.decode_button = PushButton(text="Decode")
        self.sliders = Container(label="Latent")
        self.explain_button = PushButton(text="Explain selection")
        self.explain_button.tooltip = (
            "The few latent dimensions that separate the selection from the other particles "
            "(forward selection of logistic models); click one to traverse it"
        )
        self.explanation = Container(label="Separated by")
        self.equation = wrapping(Label(label="Equation", value=""))
        self.equation.tooltip = (
            "The logistic model of the dimensions listed (both sides weighted equally), z3 "
            "being latent 3 standardised as the next line says; its balanced accuracy, "
            "cross-validated, against that of a logistic model of every latent dimension"
        )
        self.fit_column = ComboBox(label="Fit column", choices=[])
        self.fit_column.tooltip = (
            "A numeric column of the particle table to write as a constant plus at most 3 "
            "terms (z3, z3², z1·z4) of the standardised latents, over the selection or, with "
            "nothing selected, over all particles"
        )
        self.fit_button = PushButton(text="Fit")
        self.fit_result = wrapping(Label(label="Fitted", value=""))
        self.status = Label(value="")
        super().__init__()
        scrolling(
            self,
            [
                self.source,
                self.cluster,
                self.placement,
                self.iso_level,
                self.render_box,
                self.decode_button,
                self.sliders,
                self.explain_button,
                self.explanation,
                self.equation,
                self.fit_column,
                self.fit_button,
                self.fit_result,
                self.status,
            ],
        )
        self.decoding, self.explaining = Task(self.native), Task(self.native)
        self.fitting = Task(self.native)
        self.decoding.running_changed.connect(self._decode_finished)
        self.source.changed.connect(lambda s: setattr(self.cluster, "visible", s == CENTRE))
        self.decode_button.changed.connect(self.decode_source)
        self.iso_level.changed.connect(self._set_iso_level)
        self.render_box.changed.connect(self.request_decode)
        self.explain_button.changed.connect(self.explain)
        self.fit_button.changed.connect(self.fit)
        self.fit_column.changed.connect(self._clear_fit)  # the fit shown was of another column
        self.session.embedding_changed.connect(self._embedding_changed)
        self.session.embedding_changed.connect(self._list_columns)
        self.session.particles_changed.connect(self._particles_changed)
        self.session.tomogram_changed.connect(self._tomogram_changed)
        self.session.selection_changed.connect(self._selection_changed)
        self.session.model_changed.connect(self._model_changed)
        self._model_changed()
        self._list_columns()

    @property
    def anchor(self) -> int | None:
        """The row of the particle the last decode came from (or whose position it took)."""
        return self._anchor

    # -- what to decode -------------------------------------------------------------------------
    def decode_source(self) -> None:
        """Set the sliders to the chosen source's latent and pose (a turning pose's angles), and
        decode it."""
        with errors_as_notifications("Decoding"):
            session = self.session
            self._check_decodable()
            latent, pose, anchor = source_vector(
                session.latent,
                session.pose,
                source=SOURCES[self.source.value],
                selection=session.selection,
                clusters=session.clusters,
                cluster=self.cluster.value,
                rotation=self._angles,
            )
            if self._angles:
                pose = pose_angles(pose[None])[0]
            for slider, value in zip(self.sliders, [*latent, *pose], strict=True):
                with slider.changed.blocked():
                    slider.value = float(np.clip(value, slider.min, slider.max))
            self._anchor = anchor
            self.request_decode()

    # -- decoding off the main thread, newest request wins -----------------------------------
    def request_decode(self, _value: object = None) -> None:
        """Decode the sliders' latent and pose; while a decode runs, only the newest waits."""
        if self.decoding.running:
            self._pending = True
            return
        if self.session.model is None or self.session.latent is None:
            return
        if not self._embedded_by_model():
            self.status.value = NOT_EMBEDDED_BY_MODEL
            return
        latent, pose = self._slider_values()
        self._decode(latent[None], pose[None], DECODED)

    def _check_decodable(self) -> None:
        """Refuse to decode before an embedding, or with a model other than the one that
        embedded the particles."""
        if self.session.latent is None or self.session.model is None:
            raise AffinityVAEError("Run the embedding first")
        if not self._embedded_by_model():
            raise AffinityVAEError(NOT_EMBEDDED_BY_MODEL)

    def _embedded_by_model(self) -> bool:
        """Whether the particles were embedded by the current model (it may have been changed
        in the Embed dock without embedding again)."""
        return self.session.embedded_with(self.session.card)

    def _slider_values(self) -> tuple[np.ndarray, np.ndarray]:
        """The sliders' latent and pose (rotation angles as the model's quaternion)."""
        values = np.array([s.value for s in self.sliders], dtype=np.float32)
        latent, pose = np.split(values, [self.session.latent.shape[1]])
        if self._angles:
            pose = angles_pose(pose[None])[0].astype(np.float32)
        return latent, pose

    def _decode(self, latents: np.ndarray, poses: np.ndarray, name: str) -> None:
        """Decode in the background; the result is shown unless the model changed. A
        traversal asked for while the sliders' volume decodes has it decoded again after."""
        model, card = self.session.model, self.session.card
        box = self.render_box.value if is_splat(card) else card.architecture.box
        if self.decoding.running and self._decoding == DECODED and name != DECODED:
            self._pending = True  # the sliders' volume, cancelled here, is decoded after
        self._decoding = name
        self.decoding.start(
            lambda: one_step(decode_volumes, model, card, latents, poses, box),
            total=0,
            desc="Decoding",
            on_result=lambda decoded: self._decoded(card, decoded, name),
        )

    def _decoded(self, card: ModelCard, decoded: Decoded, name: str) -> None:
        """Show one volume, or a traversal's stack, and a splat model's Gaussians, unless the
        model (``card``'s) changed meanwhile (the particles may have: a volume is of the
        latent asked for, and is placed by the particle of the decode still shown)."""
        if card is not self.session.card:
            self.status.value = "decode again: the model changed while decoding"
            return
        volumes = decoded.volumes
        volume = volumes[0] if len(volumes) == 1 else volumes
        layer = self._show(volume, name, decoded.voxel_size, card)
        points = splats_name(name)
        if decoded.splats is not None:
            box = volumes.shape[-1]
            show_splats(
                self._viewer,
                points,
                decoded.splats,
                decoded.voxel_size,
                box,
                layer.scale,
                layer.translate,
                dict(layer.metadata),
            )
        elif points in self._viewer.layers:  # a splat model's, decoded before this one
            self._viewer.layers.remove(points)

    def _decode_finished(self, running: bool) -> None:
        if not running and self._pending:
            self._pending = False
            self.request_decode()

    def traverse(self, dimension: int) -> None:
        """Decode ``TRAVERSAL_STEPS`` volumes along one latent dimension across its slider's
        range (the data's, at least 1 wide), the others held at the sliders' values, as a
        stack the viewer steps through."""
        with errors_as_notifications("Traversing"):
            self._check_decodable()
            latent, pose = self._slider_values()
            slider = self.sliders[dimension]  # the data's range, at least 1 wide
            latents, poses = traversal(latent, pose, dimension, (slider.min, slider.max))
            self._decode(latents, poses, f"traversal latent {dimension}")

    def _show(self, volume: np.ndarray, name: str, voxel_size: float, card: ModelCard) -> Image:
        """Show a decoded volume (or a stack of them) of ``voxel_size`` Angstrom voxels, protein
        bright, at its place, tagged with the model (``card``'s) that decoded it."""
        data = -volume  # the model's boxes have dark protein, like the tomogram
        scale, translate = self._placement(volume.shape[-1], voxel_size)
        if data.ndim == 4:
            scale, translate = (1.0, *scale), (0.0, *translate)
        limits = (float(np.percentile(data, 50)), float(data.max()) or 1.0)
        if name in self._viewer.layers:
            layer = self._viewer.layers[name]
            layer.data, layer.scale, layer.translate = data, scale, translate
            layer.contrast_limits = limits
            layer.metadata["voxel_size"] = voxel_size
            layer.metadata[PLACED_FOR] = self._placed_for()
            layer.metadata[DECODED_KEY] = card.describe()
        else:
            with active_layer_kept(self._viewer):
                layer = self._viewer.add_image(
                    data,
                    name=name,
                    scale=scale,
                    translate=translate,
                    colormap="magma",
                    contrast_limits=limits,
                    rendering="iso",
                    blending="additive",
                    metadata={
                        "voxel_size": voxel_size,
                        DECODED_KEY: card.describe(),
                        PLACED_FOR: self._placed_for(),
                    },
                )
            if self.placement.value == BESIDE or not self._anchor_shown():
                shown = [x for x in self._viewer.layers if x.visible]
                fit_view(self._viewer, shown)  # beyond the tomogram's edge, out of the view
        if data.ndim == 4 and self._viewer.dims.ndim == 4:  # the slider a traversal adds
            labels = self._viewer.dims.axis_labels
            self._viewer.dims.axis_labels = (TRAVERSAL_AXIS, *labels[1:])
        layer.iso_threshold = iso_level(data, self.iso_level.value)
        enlarged = scale[-1] / voxel_size
        size = f", shown {enlarged:.1f}x enlarged" if enlarged > 1 else ""
        self.status.value = f"{name}: {volume.shape[-1]}^3 at {voxel_size:g} Å/voxel{size}"
        if self.placement.value == AT_PARTICLE and not self._anchor_shown():
            self.status.value += f"; beside the tomogram: {self._unanchored()}"
        return layer

    def _placement(
        self, box: int, voxel_size: float
    ) -> tuple[tuple[float, float, float], tuple[float, float, float]]:
        """Scale and Angstrom offset of a decoded volume: true size centred on the anchor
        particle, or beyond the tomogram's far x edge in the plane the user looks at, enlarged
        to three quarters of the tomogram's height so that it can be read beside it."""
        tomogram, particles = self.session.tomogram, self.session.particles
        tomo_voxel = (tomogram.voxel_size if tomogram else None) or 1.0
        if self.placement.value == AT_PARTICLE and self._anchor_shown():
            position = particles.loc[self._anchor, list(AXES)].to_numpy(dtype=float)
            centre = (box // 2) * voxel_size
            return (voxel_size,) * 3, tuple(position * tomo_voxel - centre)
        shape = np.asarray(tomogram.shape if tomogram else (box, box, box), dtype=float)
        scale = max(voxel_size, BESIDE_SHARE * shape[1] * tomo_voxel / box)
        centre = (box // 2) * scale
        middle = shape[1] / 2 * tomo_voxel - centre
        plane = view_centre(self._viewer)[0] - centre  # in the plane the user looks at
        return (scale,) * 3, (plane, middle, shape[2] * tomo_voxel + box * scale / 4)

    def _placed_for(self) -> str | None:
        """The tomogram, and its voxel size, a volume shown now is placed by (None: none open)."""
        tomogram = self.session.tomogram
        if tomogram is None:
            return None
        return f"{tomogram_identity(tomogram)} at {tomogram.voxel_size} A"

    def _tomogram_changed(self) -> None:
        """Volumes placed by another tomogram, or by this one at another voxel size (corrected
        in the Tomogram dock), stand out of place: they go, with their Gaussians."""
        placed = self._placed_for()
        if placed is None:
            return
        stale = [
            layer
            for layer in self._viewer.layers
            if isinstance(layer, Image)
            and DECODED_KEY in layer.metadata
            and layer.metadata.get(PLACED_FOR, placed) != placed
        ]
        for layer in stale:
            points = splats_name(layer.name)
            self._viewer.layers.remove(layer)
            if points in self._viewer.layers:
                self._viewer.layers.remove(points)
        if stale:
            tomogram = self.session.tomogram
            same = any(
                layer.metadata.get(PLACED_FOR, "").startswith(tomogram_identity(tomogram) + " at")
                for layer in stale
            )
            why = f"{tomogram.name}'s voxel size changed" if same else "another tomogram is shown"
            self.status.value = f"the volume shown went: {why}"

    def _unanchored(self) -> str:
        """Why a volume shown "At the particle" is beside the tomogram instead."""
        if self._anchor is None:
            return "no particle places it (decode a particle, the selection or a cluster)"
        name = self.session.particles.loc[self._anchor, TOMO_NAME]
        return f"its particle is in tomogram {name}"

    def _anchor_shown(self) -> bool:
        """Whether the anchor particle is in the tomogram shown (in a project it may not be)."""
        if self._anchor is None:
            return False
        tomogram, particles = self.session.tomogram, self.session.particles
        if self.session.project is None or tomogram is None or TOMO_NAME not in particles:
            return True
        return str(particles.loc[self._anchor, TOMO_NAME]) == tomogram.name

    def _set_iso_level(self, sigmas: float) -> None:
        for layer in self._viewer.layers:
            if isinstance(layer, Image) and DECODED_KEY in layer.metadata:
                layer.iso_threshold = iso_level(layer.data, sigmas)

    # -- sliders and explanations ---------------------------------------------------------------
    def _selection_changed(self, _source: object) -> None:
        """A new selection: the explanation and the fit shown were of the old one."""
        self.explaining.cancel()
        self._clear_explanation()
        self._clear_fit()

    def _particles_changed(self) -> None:
        """New particles: the decode anchor (a row of the old table) no longer means anything;
        the sliders stay where they were after an edit by hand (the latents are the same)."""
        self._anchor = None
        if not self.session.by_hand:
            self._embedding_changed()
        self._list_columns()

    def _clear_explanation(self) -> None:
        self.explanation.clear()
        self.equation.value = ""
        if self.status.value == NOTHING_SEPARATES:
            self.status.value = ""

    def _clear_fit(self) -> None:
        self.fitting.cancel()
        self.fit_result.value = ""

    def _list_columns(self) -> None:
        """Offer the particle table's numeric columns to fit; a fit shown was of the old table."""
        self._clear_fit()
        self.fit_column.choices = fittable_columns(self.session.particles)

    def _model_changed(self) -> None:
        """A splat model renders at a box of the user's choice (its own to start with); a
        turning pose has rotation sliders."""
        card = self.session.card
        with self.render_box.changed.blocked():
            self.render_box.visible = is_splat(card)
            if is_splat(card):
                box = card.architecture.box
                self.render_box.range = (box, MAX_RENDER * box)
                self.render_box.value = box
        self._build_sliders()

    def _embedding_changed(self) -> None:
        """New latents: new sliders, and volumes another model decoded go. The same latents
        projected or clustered again keep the sliders where the user set them."""
        latent, pose, card = self.session.latent, self.session.pose, self.session.card
        built_latent, built_pose, built_card = self._built
        if card is built_card and _same(latent, built_latent) and _same(pose, built_pose):
            self._clear_explanation()
            return
        self._build_sliders()
        if latent is not None and card is not None:
            made = card.describe()
            for layer in [x for x in self._viewer.layers if _decoded_by_other(x, made)]:
                self._viewer.layers.remove(layer)

    def _build_sliders(self) -> None:
        """A slider per latent dimension and per pose number, ranging over the data; for a
        turning pose, rot, tilt and psi in degrees instead."""
        self.sliders.clear()
        self._clear_explanation()
        latent, pose, card = self.session.latent, self.session.pose, self.session.card
        self._built = (latent, pose, card)
        if latent is None:
            self.status.value = "Run the embedding to decode"
            return
        columns = [(f"latent {i}", *slider_range(latent[:, i])) for i in range(latent.shape[1])]
        self._angles = card is not None and turns_pose(card.architecture) and pose is not None
        if self._angles:
            columns += [(name, low, high, 0.0) for name, (low, high) in ROTATION.items()]
        elif pose is not None:
            columns += [(f"pose {i}", *slider_range(pose[:, i])) for i in range(pose.shape[1])]
        for name, low, high, middle in columns:
            slider = FloatSlider(label=name, min=low, max=high, value=middle)
            slider.changed.connect(self.request_decode)
            self.sliders.append(slider)
        self.status.value = ""

    def explain(self) -> None:
        """List the latent dimensions separating the selection, each a button to traverse it."""
        with errors_as_notifications("Explaining the selection"):
            latent = self.session.latent
            if latent is None:
                raise AffinityVAEError("Run the embedding first")
            rows = self.session.selection
            if not len(rows):
                raise AffinityVAEError("The selection is empty: select particles first")
            version = self.session.version
            self.explaining.start(
                lambda: one_step(explain_selection, latent, rows),
                total=0,
                desc="Explaining the selection",
                on_result=lambda found: self._explained(version, rows, found),
            )

    def _explained(self, version: int, rows: np.ndarray, found: Explanation) -> None:
        """Show an explanation only of the selection and particles it was asked for."""
        if self._current(version, rows):
            self._show_explanation(found)

    def _current(self, version: int, rows: np.ndarray) -> bool:
        """Whether the particles and the selection are still those of ``version`` and ``rows``."""
        return version == self.session.version and np.array_equal(rows, self.session.selection)

    def _show_explanation(self, explanation: Explanation) -> None:
        self._clear_explanation()
        terms = {t.dimensions: t.coefficient for t in explanation.formula.terms}
        for e in explanation.dimensions:
            side = _side(e, terms)
            button = PushButton(
                text=f"latent {e.dimension}: {side} ({e.selected_mean:.2f} vs {e.others_mean:.2f})"
            )
            button.changed.connect(lambda _v=None, d=e.dimension: self.traverse(d))
            self.explanation.append(button)
        if explanation.dimensions:
            self.equation.value = explanation_text(explanation)
        else:
            self.status.value = NOTHING_SEPARATES

    def fit(self) -> None:
        """Fit the chosen column as a short formula of the latents over the selection, or over
        all particles when nothing is selected."""
        self._clear_fit()  # whatever comes of this fit, the last one is not its answer
        with errors_as_notifications("Fitting a column"):
            column = self.fit_column.value
            if self.session.latent is None:
                raise AffinityVAEError("Run the embedding first")
            if column is None:
                raise AffinityVAEError("The particles have no numeric column to fit")
            particles, rows = self.session.particles, self.session.selection
            version = self.session.version
            self.fitting.start(
                lambda: one_step(fit_particle_column, particles, column, rows),
                total=0,
                desc=f"Fitting {column}",
                on_result=lambda fit: self._fitted(version, rows, fit),
            )

    def _fitted(self, version: int, rows: np.ndarray, fit: ColumnFit) -> None:
        """Show a fit only of the selection and particles it was asked for."""
        if self._current(version, rows):
            self.fit_result.value = fit_text(fit, selected=len(rows) > 0)


def explanation_text(explanation: Explanation) -> str:
    """The equation, its dimensions' standardisation, and its accuracy against all dimensions'."""
    accuracy = explanation.accuracy or "too few particles on one side to cross-validate"
    return "\n".join([explanation.equation, explanation.formula.where, str(accuracy)])


def fit_text(fit: ColumnFit, selected: bool) -> str:
    """A fit's equation, its dimensions' standardisation (or that none predicts the column), its
    cross-validated R^2 and the particles it was fitted over."""
    where = fit.formula.where or f"no term of the latents predicts {fit.column} beyond its mean"
    over = "the selection" if selected else "all particles"
    r2 = f"cross-validated R\N{SUPERSCRIPT TWO} {fit.r2:.2f} ({fit.folds}-fold)"
    return "\n".join([fit.equation, where, f"{r2} over {over}: {fit.particles:,} particles"])


def _same(array: np.ndarray | None, other: np.ndarray | None) -> bool:
    if array is None or other is None:
        return array is other
    return array.shape == other.shape and np.array_equal(array, other, equal_nan=True)


def _decoded_by_other(layer: object, made: str) -> bool:
    """Whether ``layer`` is a volume (or Gaussians) decoded by a model other than ``made``."""
    metadata = getattr(layer, "metadata", {})
    return DECODED_KEY in metadata and metadata[DECODED_KEY] != made


def slider_range(values: np.ndarray) -> tuple[float, float, float]:
    """A slider's minimum, maximum and start for a latent column: the data's range rounded
    outwards to what the slider shows (at least 1 wide, for one particle), and the median."""
    values = values[np.isfinite(values)]  # particles not embedded have none
    if not len(values):
        return -1.0, 1.0, 0.0
    low, high = float(np.min(values)), float(np.max(values))
    if high - low < 1e-3:
        low, high = low - 0.5, high + 0.5
    low, high = np.floor(low * 1e4) / 1e4, np.ceil(high * 1e4) / 1e4
    return float(low), float(high), float(np.clip(np.median(values), low, high))


def iso_level(data: np.ndarray, sigmas: float) -> float:
    """The isosurface level ``sigmas`` standard deviations above the volume's mean."""
    return float(data.mean() + sigmas * data.std())


def _side(dimension: Dimension, terms: dict[tuple[int, ...], float]) -> str:
    """How the selection differs on ``dimension``, given the equation's ``terms``: the side of
    the means shown ("higher"; the equation's sign, given the other dimensions, may differ).
    A dimension in the equation only squared sets the selection apart by its spread ("nearer
    the middle", "farther out"); one only in a product by its side of the middle against the
    other dimension's ("same side as latent 1": both above their means or both below)."""
    d = dimension.dimension
    if (d,) not in terms and (d, d) in terms:
        return "nearer the middle" if terms[(d, d)] < 0 else "farther out"
    products = [t for t in terms if len(t) == 2 and d in t and t[0] != t[1]]
    if (d,) not in terms and products:
        other = next(k for k in products[0] if k != d)
        if terms[products[0]] > 0:
            return f"same side as latent {other}"
        return f"opposite side to latent {other}"
    return "higher" if dimension.selected_mean > dimension.others_mean else "lower"
