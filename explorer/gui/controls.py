"""The left dock: scene, playback, problem, training and per-run controls.

The panel renders the controller's Config (``set_config``) and keeps no copy of it: every change the
user makes goes out as a request, and the controls show the config that comes back.

- ``edited(key, value)``: one dotted config key (``train.lr``, ``runs.1.k``, ``problem.name``, ``seed``
  ...); the controller applies live keys to the running session and rebuilds it for the others;
- ``add_run_clicked()``, ``remove_run_clicked(index)``, ``preset_chosen(name)``;
- playback: ``start_pause_clicked``, ``step_clicked``, ``reset_clicked``, ``reseed_clicked``,
  ``speed_changed(steps_per_s | None)``.

Invalid values are refused at the control: every spin box has the range the config accepts, and says
why when it refuses what was typed (a tooltip at the box, and ``refused(reason)`` for the status bar).
The boxes whose value drives memory and time (K, M, batch size) stop where the resource budget does
(``explorer.core.budget.max_admissible`` for the config shown, cached per config: :class:`BudgetLimits`),
so a spin box cannot ask for a session the machine cannot hold.
"""
from __future__ import annotations

import math

from PySide6.QtCore import QPoint, Qt, Signal, Slot
from PySide6.QtGui import QValidator
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QFormLayout,
    QGridLayout,
    QGroupBox,
    QHBoxLayout,
    QPushButton,
    QSizePolicy,
    QSpinBox,
    QToolButton,
    QToolTip,
    QVBoxLayout,
    QWidget,
)

from explorer.core import budget, edits
from explorer.core.config import LIMITS, Config, RunConfig, list_presets
from explorer.core.edits import MAX_GUI_RUNS
from explorer.core.errors import ConfigError
from explorer.core.models import ENCODERS
from explorer.core.objectives import OBJECTIVES
from explorer.core.problems import PROBLEMS
from explorer.core.session import available_devices  # cpu always; cuda / mps when torch sees them

from . import theme

#: (label, steps per second); None = as fast as possible
SPEEDS: tuple[tuple[str, float | None], ...] = (
    ("Max", None), ("300 steps/s", 300.0), ("100 steps/s", 100.0), ("30 steps/s", 30.0),
    ("10 steps/s", 10.0), ("2 steps/s (slow motion)", 2.0),
)


def objective_tooltip(name: str) -> str:
    spec = OBJECTIVES[name]
    return f"{name.upper()}\n{spec.formula}\n{spec.shows}"


def _explain_refusal(box: "SpinBox | DoubleSpinBox", text: str) -> None:
    """When ``text`` is a number outside the box's range, say so at the box and through ``refused``."""
    stripped = text.strip()
    value, ok = box.locale().toDouble(stripped)
    if not ok:
        try:
            value = float(stripped)
        except ValueError:
            return  # not a number (yet): the box just does not take the keystroke
    if box.minimum() <= value <= box.maximum():
        return
    if value > box.maximum() and box.budget_limited:
        reason = (f"{box.label}: {stripped} is refused; this scene fits {box.label} ≤ "
                  f"{box.textFromValue(box.maximum())} (memory/time budget)")
    else:
        reason = (f"{box.label}: {stripped} is refused; it must be between {box.textFromValue(box.minimum())} "
                  f"and {box.textFromValue(box.maximum())}{box.why}")
    QToolTip.showText(box.mapToGlobal(QPoint(0, box.height())), reason, box)
    box.refused.emit(reason)


class SpinBox(QSpinBox):
    """An integer box over the range the config accepts that explains a refused entry.

    Typing past the maximum is refused key by key; a value below the minimum is put back to the last
    valid one on Enter or focus-out. Both show why (tooltip) and emit ``refused(reason)``.
    ``set_budget_limit`` lowers the maximum to what the resource budget admits (the refusal says so).
    """

    refused = Signal(str)
    budget_limited = False  # the maximum is the budget's, not the config's

    def __init__(self, lo: int, hi: int, tip: str, label: str, why: str = "",
                 parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.label, self.why, self._tip, self.config_max = label, why, tip, hi
        self.setRange(lo, hi)
        self.setKeyboardTracking(False)  # apply on Enter / focus-out / arrows, not on every digit
        self.setToolTip(tip)

    def set_budget_limit(self, limit: int | None, value: int) -> None:
        """The maximum for a box about to show ``value``: the budget's ``limit`` (None: not even the
        minimum fits), never below ``value`` itself (the session running with it was admitted)."""
        if limit is None:
            limit = self.minimum()
        top = min(self.config_max, max(limit, value))
        self.budget_limited = top < self.config_max
        self.setMaximum(top)
        self.setToolTip(f"{self._tip}\nThis scene fits {self.label} ≤ {top} (memory/time budget)"
                        if self.budget_limited else self._tip)

    def validate(self, text: str, pos: int):  # noqa: D102 (Qt override)
        result = super().validate(text, pos)
        if result[0] == QValidator.State.Invalid:
            _explain_refusal(self, text)
        return result

    def fixup(self, text: str):  # noqa: D102 (Qt override: called on Enter with an unfinished value)
        _explain_refusal(self, text)
        return super().fixup(text)


class DoubleSpinBox(QDoubleSpinBox):
    """A number box over the range the config accepts that explains a refused entry (see SpinBox)."""

    refused = Signal(str)
    budget_limited = False

    def __init__(self, lo: float, hi: float, step: float, decimals: int, tip: str, label: str,
                 why: str = "", parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.label, self.why = label, why
        self.setDecimals(decimals)
        self.setRange(lo, hi)
        self.setSingleStep(step)
        self.setKeyboardTracking(False)
        self.setToolTip(tip)

    def validate(self, text: str, pos: int):  # noqa: D102
        result = super().validate(text, pos)
        if result[0] == QValidator.State.Invalid:
            _explain_refusal(self, text)
        return result

    def fixup(self, text: str):  # noqa: D102
        _explain_refusal(self, text)
        return super().fixup(text)


class LogSpinBox(DoubleSpinBox):
    """A learning-rate box: arrows step along 1, 2, 5 × 10ⁿ; text shows 3 significant digits."""

    _MANTISSAS = (1.0, 2.0, 5.0)

    def __init__(self, lo: float, hi: float, tip: str = "", label: str = "Learning rate",
                 parent: QWidget | None = None) -> None:
        super().__init__(lo, hi, 0.0, 8, tip, label, parent=parent)

    def textFromValue(self, value: float) -> str:  # noqa: N802 (Qt override)
        return f"{value:.3g}"

    def valueFromText(self, text: str) -> float:  # noqa: N802
        try:
            return float(text)
        except ValueError:
            return self.value()

    def validate(self, text: str, pos: int):  # noqa: D102
        stripped = text.strip()
        if stripped in ("", ".", "-", "e", "1e", "1e-"):
            return QValidator.State.Intermediate, text, pos
        try:
            v = float(stripped)
        except ValueError:
            if all(c in "0123456789.eE-+" for c in stripped):
                return QValidator.State.Intermediate, text, pos
            return QValidator.State.Invalid, text, pos
        if self.minimum() <= v <= self.maximum():
            return QValidator.State.Acceptable, text, pos
        return QValidator.State.Intermediate, text, pos  # explained on Enter (fixup)

    def stepBy(self, steps: int) -> None:  # noqa: N802
        ladder = sorted({m * 10.0 ** e for e in range(-7, 3) for m in self._MANTISSAS
                         if self.minimum() <= m * 10.0 ** e <= self.maximum()})
        v = self.value()
        if steps > 0:
            above = [x for x in ladder if x > v * (1 + 1e-9)]
            target = above[min(steps, len(above)) - 1] if above else v
        else:
            below = [x for x in ladder if x < v * (1 - 1e-9)]
            target = below[-min(-steps, len(below))] if below else v
        self.setValue(target)


def _combo() -> QComboBox:
    """A combo box as narrow as ~10 characters: long entries elide and show in full when open."""
    box = QComboBox()
    box.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
    box.setMinimumContentsLength(10)
    return box


def _section(title: str) -> tuple[QGroupBox, QFormLayout]:
    box = QGroupBox(title)
    form = QFormLayout(box)
    form.setFieldGrowthPolicy(QFormLayout.FieldGrowthPolicy.AllNonFixedFieldsGrow)
    form.setContentsMargins(6, 4, 6, 4)
    form.setVerticalSpacing(3)
    return box, form


class BudgetLimits:
    """The largest K (and M, where the objective reads it) of each run and the largest batch size that fit
    the resource budget with the rest of a config (``budget.max_admissible``), for the config shown.

    One config's limits take ~10-60 ms (a bisection of the estimate per key), so they are kept for the
    last few configs: the controls are rendered again after every edit, and often for a config seen
    before (a refused edit, a rebuild that failed). The budget follows the memory available when a
    config is first seen."""

    KEEP = 8

    def __init__(self) -> None:
        self._cache: list[tuple[Config, str, dict[str, int | None]]] = []
        self.computed = 0  # configs whose limits were computed (not taken from the cache)

    def limits(self, config: Config, device: str) -> dict[str, int | None]:
        """{"runs.I.k": max, "runs.I.m": max, "train.batch_size": max}; a max is None where not even the
        smallest value fits."""
        for cached, cached_device, limits in self._cache:
            if cached_device == device and cached == config:
                return limits
        limits = self._compute(config, device)
        self._cache = [(config, device, limits), *self._cache[: self.KEEP - 1]]
        self.computed += 1
        return limits

    @staticmethod
    def _compute(config: Config, device: str) -> dict[str, int | None]:
        limits: dict[str, int | None] = {}
        try:
            for i, run in enumerate(config.runs):
                limits[f"runs.{i}.k"] = budget.max_admissible(config, f"runs.{i}.k", device or None)
                if OBJECTIVES[run.objective].uses_m():
                    limits[f"runs.{i}.m"] = budget.max_admissible(config, f"runs.{i}.m", device or None)
            # the batch box sets train.batch_size for every run (edits.edit drops per-run sizes)
            uniform = edits.edit(config, "train.batch_size", config.train.batch_size)
            limits["train.batch_size"] = budget.max_admissible(uniform, "train.batch_size", device or None)
        except ConfigError:  # a budget setting that is not understood: the session's own check says why
            return {}
        return limits


class RunEditor(QGroupBox):
    """One run: objective (with its parameters) and encoder."""

    edited = Signal(str, object)  # dotted key (runs.N.objective, runs.N.k ...), value
    remove_requested = Signal(int)

    def __init__(self, index: int, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.index = index
        # the run's colour in every plot, so a control is easy to match with its curves
        self.setStyleSheet(f"QGroupBox::title {{ color: {theme.run_color(index)}; font-weight: bold; }}")
        form = QFormLayout(self)
        form.setFieldGrowthPolicy(QFormLayout.FieldGrowthPolicy.AllNonFixedFieldsGrow)
        form.setContentsMargins(6, 4, 6, 4)
        form.setVerticalSpacing(3)
        self._form = form

        head = QHBoxLayout()
        self.objective = _combo()
        for i, name in enumerate(OBJECTIVES):
            self.objective.addItem(name.upper(), name)
            self.objective.setItemData(i, objective_tooltip(name), Qt.ItemDataRole.ToolTipRole)
        self.remove = QToolButton()
        self.remove.setText("✕")
        self.remove.setToolTip("Remove this run (rebuilds the session)")
        head.addWidget(self.objective, 1)
        head.addWidget(self.remove)
        form.addRow("Objective", head)

        self.encoder = _combo()
        for i, (name, what) in enumerate(ENCODERS.items()):
            self.encoder.addItem(name, name)
            self.encoder.setItemData(i, what, Qt.ItemDataRole.ToolTipRole)
        form.addRow("Encoder", self.encoder)

        self.k = SpinBox(*LIMITS["runs.k"], "K: importance samples (particles) per group", "K")
        self.m = SpinBox(*LIMITS["runs.m"], "M: independent groups of K particles", "M")
        self.beta = DoubleSpinBox(0.0, 1.0, 0.05, 2, "β: weight of the ELBO in β·ELBO + (1−β)·L_K", "β")
        self.alpha = DoubleSpinBox(-5.0, 0.95, 0.05, 2, "α of the Rényi bound (α = 0: IWAE, α → 1: ELBO)", "α",
                                   " (α = 1 is the ELBO itself: use a VAE run)")
        self._param_rows = {"k": self.k, "m": self.m, "beta": self.beta, "alpha": self.alpha}
        for label, box in (("K", self.k), ("M", self.m), ("β", self.beta), ("α", self.alpha)):
            form.addRow(label, box)

        self.objective.currentIndexChanged.connect(self._on_objective)
        self.encoder.currentIndexChanged.connect(self._on_encoder)
        self.remove.clicked.connect(lambda: self.remove_requested.emit(self.index))
        for key, box in self._param_rows.items():
            box.valueChanged.connect(lambda value, key=key: self._on_param(key, value))

    def set_run(self, run: RunConfig, encoder: str, removable: bool,
                limits: dict[str, int | None] | None = None) -> None:
        """Show ``run``; ``limits``: the budget's largest K and M ("k", "m"), absent where unknown."""
        widgets = (self.objective, self.encoder, self.k, self.m, self.beta, self.alpha)
        limits = limits or {}
        for w in widgets:
            w.blockSignals(True)
        try:
            self.objective.setCurrentIndex(self.objective.findData(run.objective))
            self.encoder.setCurrentIndex(self.encoder.findData(encoder))
            for key, box, value in (("k", self.k, run.k), ("m", self.m, run.m)):
                box.set_budget_limit(limits.get(key, box.config_max), value)
            self.k.setValue(run.k)
            self.m.setValue(run.m)
            self.beta.setValue(run.beta)
            self.alpha.setValue(run.alpha)
        finally:
            for w in widgets:
                w.blockSignals(False)
        self.setTitle(f"Run {self.index + 1}: {run.name}")
        self.remove.setEnabled(removable)
        self._show_params(run.objective)

    def _show_params(self, objective: str) -> None:
        params = OBJECTIVES[objective].params
        for key, box in self._param_rows.items():
            shown = key == "k" or key in params
            self._form.setRowVisible(box, shown)
            box.setEnabled(shown)
        self.objective.setToolTip(objective_tooltip(objective))

    @Slot(int)
    def _on_objective(self, _i: int) -> None:
        name = self.objective.currentData()
        self._show_params(name)
        self.edited.emit(f"runs.{self.index}.objective", name)

    @Slot(int)
    def _on_encoder(self, _i: int) -> None:
        self.edited.emit(f"runs.{self.index}.encoder", self.encoder.currentData())

    def _on_param(self, key: str, value: float) -> None:
        self.edited.emit(f"runs.{self.index}.{key}", int(value) if key in ("k", "m") else float(value))


class ControlPanel(QWidget):
    """All controls of the dock. See the module docstring for the signals."""

    refused = Signal(str)  # why a typed value was not taken (for the status bar)
    preset_chosen = Signal(str)
    edited = Signal(str, object)  # a dotted config key and its new value
    add_run_clicked = Signal()
    remove_run_clicked = Signal(int)
    speed_changed = Signal(object)  # float | None
    start_pause_clicked = Signal()
    step_clicked = Signal()
    reset_clicked = Signal()
    reseed_clicked = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._runs: list[RunEditor] = []
        self.budget_limits = BudgetLimits()
        outer = QVBoxLayout(self)
        outer.setContentsMargins(4, 4, 4, 4)
        outer.setSpacing(6)

        # scene
        box, form = _section("Scene")
        self.preset = _combo()
        self.preset.setToolTip("Ready-made scenes from assets/presets")
        form.addRow("Preset", self.preset)
        outer.addWidget(box)

        # playback
        box, form = _section("Playback")
        buttons = QGridLayout()
        self.start_pause = QPushButton("Start")
        self.start_pause.setToolTip("Start / pause training (Space)")
        self.step = QPushButton("Step")
        self.step.setToolTip("One training step (S)")
        self.reset = QPushButton("Reset")
        self.reset.setToolTip("Back to step 0 with the same seed (R)")
        self.reseed = QPushButton("Reseed")
        self.reseed.setToolTip("Back to step 0 with a new seed")
        for i, b in enumerate((self.start_pause, self.step, self.reset, self.reseed)):
            b.setSizePolicy(QSizePolicy.Policy.Minimum, QSizePolicy.Policy.Fixed)
            buttons.addWidget(b, i // 2, i % 2)
        form.addRow(buttons)
        self.speed = _combo()
        for label, value in SPEEDS:
            self.speed.addItem(label, value)
        self.speed.setToolTip("Training speed; slow motion shows every step")
        form.addRow("Speed", self.speed)
        self.observation = SpinBox(0, 0, "Index of the observation x shown (or click a data point)",
                                   "Observation", " (an index into the data set)")
        form.addRow("Observation", self.observation)
        outer.addWidget(box)

        # problem
        box, form = _section("Problem")
        self.problem = _combo()
        for name in PROBLEMS:
            self.problem.addItem(name, name)
        self.problem.setToolTip("The toy problem (changing it rebuilds the session)")
        form.addRow("Problem", self.problem)
        self.learn_decoder = QCheckBox("Learn decoder θ")
        self.learn_decoder.setToolTip("Off: θ = θ* is frozen and only q learns (pure inference). "
                                      "On: θ and φ train together (a VAE).")
        form.addRow(self.learn_decoder)
        outer.addWidget(box)

        # training
        box, form = _section("Training")
        self.lr = LogSpinBox(1e-6, 1.0, "Learning rate of every run (applies at the next step)")
        form.addRow("Learning rate", self.lr)
        self.batch_size = SpinBox(*LIMITS["train.batch_size"], "Minibatch size (rebuilds the session)", "Batch size")
        form.addRow("Batch size", self.batch_size)
        self.seed = SpinBox(0, 2**31 - 1, "Seed (rebuilds the session); Reseed picks a new one", "Seed")
        form.addRow("Seed", self.seed)
        self.device = _combo()
        for name in available_devices():
            self.device.addItem(name, name)
        self.device.setToolTip("Where the models train (rebuilds the session)")
        form.addRow("Device", self.device)
        outer.addWidget(box)

        # runs
        self._runs_box = QWidget()
        self._runs_layout = QVBoxLayout(self._runs_box)
        self._runs_layout.setContentsMargins(0, 0, 0, 0)
        self._runs_layout.setSpacing(4)
        outer.addWidget(self._runs_box)
        self.add_run = QPushButton("+ Add run")
        self.add_run.setToolTip(f"Add a run trained in lockstep (up to {MAX_GUI_RUNS}; rebuilds the session)")
        outer.addWidget(self.add_run)
        outer.addStretch(1)

        self._populate_presets()
        self.preset.activated.connect(self._on_preset)
        self.start_pause.clicked.connect(self.start_pause_clicked)
        self.step.clicked.connect(self.step_clicked)
        self.reset.clicked.connect(self.reset_clicked)
        self.reseed.clicked.connect(self.reseed_clicked)
        self.speed.currentIndexChanged.connect(self._on_speed)
        self.observation.valueChanged.connect(self._on_observation)
        self.problem.currentIndexChanged.connect(self._on_problem)
        self.learn_decoder.toggled.connect(self._on_learn_decoder)
        self.lr.valueChanged.connect(self._on_lr)
        self.batch_size.valueChanged.connect(self._on_batch_size)
        self.seed.valueChanged.connect(self._on_seed)
        self.device.currentIndexChanged.connect(self._on_device)
        self.add_run.clicked.connect(self.add_run_clicked)
        for box in (self.observation, self.lr, self.batch_size, self.seed):
            box.refused.connect(self.refused)

    # ------------------------------------------------------------------ state in
    def _populate_presets(self) -> None:
        self.preset.clear()
        self.preset.addItem("(custom)", None)
        for i, p in enumerate(list_presets(), start=1):
            self.preset.addItem(p["title"], p["name"])
            self.preset.setItemData(i, f"{p['name']}: {p['description']}", Qt.ItemDataRole.ToolTipRole)

    def _silent(self) -> list[QWidget]:
        return [self.preset, self.speed, self.observation, self.problem, self.learn_decoder, self.lr,
                self.batch_size, self.seed, self.device]

    def set_config(self, cfg: Config, device: str, preset: str | None = None) -> None:
        """Show ``cfg`` (running on ``device``) in the controls without emitting any change; K, M and the
        batch size stop where the resource budget does for ``cfg``."""
        limits = self.budget_limits.limits(cfg, device)
        widgets = self._silent()
        for w in widgets:
            w.blockSignals(True)
        try:
            index = self.preset.findData(preset) if preset else -1
            if index < 0:
                index = next((i for i in range(1, self.preset.count())
                              if self.preset.itemText(i) == cfg.title), 0)
            self.preset.setCurrentIndex(index)
            self.observation.setRange(0, cfg.problem.n_data - 1)
            self.observation.setValue(cfg.problem.observation)
            self.problem.setCurrentIndex(self.problem.findData(cfg.problem.name))
            self.learn_decoder.setChecked(cfg.problem.learn_decoder)
            lrs = {cfg.run_train(i).lr for i in range(len(cfg.runs))}
            self.lr.setValue(cfg.train.lr if len(lrs) != 1 else lrs.pop())
            self.batch_size.set_budget_limit(limits.get("train.batch_size", self.batch_size.config_max),
                                             cfg.train.batch_size)
            self.batch_size.setValue(cfg.train.batch_size)
            self.seed.setValue(min(cfg.seed, self.seed.maximum()))
            if device:
                self.device.setCurrentIndex(max(0, self.device.findData(device)))
        finally:
            for w in widgets:
                w.blockSignals(False)
        self._show_runs(cfg, limits)

    def _show_runs(self, cfg: Config, limits: dict[str, int | None]) -> None:
        """The run editors: rebuilt when the number of runs changes, else updated in place (a box being
        typed into keeps its focus)."""
        if len(self._runs) != len(cfg.runs):
            for editor in self._runs:
                self._runs_layout.removeWidget(editor)
                editor.deleteLater()
            self._runs = []
            for i in range(len(cfg.runs)):
                editor = RunEditor(i, self._runs_box)
                editor.edited.connect(self.edited)
                editor.remove_requested.connect(self.remove_run_clicked)
                for box in (editor.k, editor.m, editor.beta, editor.alpha):
                    box.refused.connect(self.refused)
                self._runs_layout.addWidget(editor)
                self._runs.append(editor)
        for i, (editor, run) in enumerate(zip(self._runs, cfg.runs)):
            run_limits = {key: limits[f"runs.{i}.{key}"] for key in ("k", "m") if f"runs.{i}.{key}" in limits}
            editor.set_run(run, cfg.run_train(i).encoder, removable=len(cfg.runs) > 1, limits=run_limits)
        self.add_run.setEnabled(len(cfg.runs) < MAX_GUI_RUNS)

    def set_state(self, state: str) -> None:
        self.start_pause.setText("Pause" if state == "running" else "Start")

    @property
    def run_editors(self) -> list[RunEditor]:
        return list(self._runs)

    def speed_value(self) -> float | None:
        return self.speed.currentData()

    # ------------------------------------------------------------------ edits out
    @Slot(int)
    def _on_preset(self, index: int) -> None:
        name = self.preset.itemData(index)
        if name:
            self.preset_chosen.emit(name)

    @Slot(int)
    def _on_speed(self, _i: int) -> None:
        self.speed_changed.emit(self.speed.currentData())

    @Slot(int)
    def _on_observation(self, index: int) -> None:
        self.edited.emit("problem.observation", index)

    @Slot(int)
    def _on_problem(self, _i: int) -> None:
        self.edited.emit("problem.name", self.problem.currentData())

    @Slot(bool)
    def _on_learn_decoder(self, on: bool) -> None:
        self.edited.emit("problem.learn_decoder", on)

    @Slot(float)
    def _on_lr(self, lr: float) -> None:
        if math.isfinite(lr) and lr > 0:
            self.edited.emit("train.lr", lr)

    @Slot(int)
    def _on_batch_size(self, value: int) -> None:
        self.edited.emit("train.batch_size", value)

    @Slot(int)
    def _on_seed(self, value: int) -> None:
        self.edited.emit("seed", value)

    @Slot(int)
    def _on_device(self, _i: int) -> None:
        self.edited.emit("device", self.device.currentData())
