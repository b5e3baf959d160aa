"""The left dock: scene, playback, problem, training and per-run controls.

The panel keeps the scene as an editable TOML-shaped dict (``config_to_dict`` of the running config)
and tells the window what changed through signals:

- *live* changes the running Session applies at its next step (``lr_changed``,
  ``run_params_changed``, ``speed_changed``, ``observation_changed``);
- *structural* changes that need a new Session (``config_edited(raw, reason)``: problem, encoder,
  objective, learn_decoder, batch size, seed, device, adding or removing a run).

Invalid values are refused at the control: every spin box has the range the config accepts, and says
why when it refuses what was typed (a tooltip at the box, and ``refused(reason)`` for the status bar).
"""
from __future__ import annotations

import copy
import math
from typing import Any

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

from explorer.core.config import Config, config_from_dict, config_to_dict, default_run_name, list_presets
from explorer.core.models import ENCODERS
from explorer.core.objectives import OBJECTIVES
from explorer.core.problems import PROBLEMS
from explorer.core.session import available_devices  # cpu always; cuda / mps when torch sees them

from . import theme

MAX_GUI_RUNS = 4
#: (label, steps per second); None = as fast as possible
SPEEDS: tuple[tuple[str, float | None], ...] = (
    ("Max", None), ("300 steps/s", 300.0), ("100 steps/s", 100.0), ("30 steps/s", 30.0),
    ("10 steps/s", 10.0), ("2 steps/s (slow motion)", 2.0),
)
#: objectives a new run takes, first one not in use yet
_NEW_RUN_OBJECTIVES = ("iwae", "dreg", "rws", "miwae", "vae", "piwae", "stl", "ciwae", "vr")


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
    reason = (f"{box.label}: {stripped} is refused; it must be between {box.textFromValue(box.minimum())} "
              f"and {box.textFromValue(box.maximum())}{box.why}")
    QToolTip.showText(box.mapToGlobal(QPoint(0, box.height())), reason, box)
    box.refused.emit(reason)


class SpinBox(QSpinBox):
    """An integer box over the range the config accepts that explains a refused entry.

    Typing past the maximum is refused key by key; a value below the minimum is put back to the last
    valid one on Enter or focus-out. Both show why (tooltip) and emit ``refused(reason)``.
    """

    refused = Signal(str)

    def __init__(self, lo: int, hi: int, tip: str, label: str, why: str = "",
                 parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.label, self.why = label, why
        self.setRange(lo, hi)
        self.setKeyboardTracking(False)  # apply on Enter / focus-out / arrows, not on every digit
        self.setToolTip(tip)

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


class RunEditor(QGroupBox):
    """One run: objective (with its parameters) and encoder."""

    objective_changed = Signal(int, str)
    encoder_changed = Signal(int, str)
    params_changed = Signal(int, dict)  # live: k / m / beta / alpha
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

        self.k = SpinBox(1, 100_000, "K: importance samples (particles) per group", "K")
        self.m = SpinBox(1, 10_000, "M: independent groups of K particles", "M")
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

    def set_run(self, run: dict[str, Any], encoder: str, name: str, removable: bool) -> None:
        widgets = (self.objective, self.encoder, self.k, self.m, self.beta, self.alpha)
        for w in widgets:
            w.blockSignals(True)
        try:
            self.objective.setCurrentIndex(self.objective.findData(run["objective"]))
            self.encoder.setCurrentIndex(self.encoder.findData(encoder))
            self.k.setValue(int(run.get("k", 1)))
            self.m.setValue(int(run.get("m", 1)))
            self.beta.setValue(float(run.get("beta", 0.5)))
            self.alpha.setValue(float(run.get("alpha", 0.5)))
        finally:
            for w in widgets:
                w.blockSignals(False)
        self.setTitle(f"Run {self.index + 1}: {name}")
        self.remove.setEnabled(removable)
        self._show_params(run["objective"])

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
        self.objective_changed.emit(self.index, name)

    @Slot(int)
    def _on_encoder(self, _i: int) -> None:
        self.encoder_changed.emit(self.index, self.encoder.currentData())

    def _on_param(self, key: str, value: float) -> None:
        self.params_changed.emit(self.index, {key: int(value) if key in ("k", "m") else float(value)})


class ControlPanel(QWidget):
    """All controls of the dock. See the module docstring for the signals."""

    refused = Signal(str)  # why a typed value was not taken (for the status bar)
    preset_chosen = Signal(str)
    config_edited = Signal(dict, str)  # the edited raw dict, and what changed (for the status bar)
    lr_changed = Signal(float)
    run_params_changed = Signal(int, dict)
    speed_changed = Signal(object)  # float | None
    observation_changed = Signal(int)
    start_pause_clicked = Signal()
    step_clicked = Signal()
    reset_clicked = Signal()
    reseed_clicked = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._raw: dict[str, Any] = {}
        self._device = "cpu"
        self._preset: str | None = None
        self._runs: list[RunEditor] = []
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
        self.batch_size = SpinBox(1, 100_000, "Minibatch size (rebuilds the session)", "Batch size")
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
        self.add_run.clicked.connect(self._on_add_run)
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
        """Show ``cfg`` (running on ``device``) in the controls without emitting any change."""
        raw = config_to_dict(cfg)
        for i, run in enumerate(cfg.runs):  # generated names are regenerated from the edited values
            if _is_default_name(run.name, default_run_name(run), i):
                raw["runs"][i].pop("name", None)
        self._raw = raw
        self._device, self._preset = device, preset
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
            self.batch_size.setValue(cfg.train.batch_size)
            self.seed.setValue(min(cfg.seed, self.seed.maximum()))
            self.device.setCurrentIndex(max(0, self.device.findData(device)))
        finally:
            for w in widgets:
                w.blockSignals(False)
        self._build_runs(cfg)

    def _build_runs(self, cfg: Config) -> None:
        for editor in self._runs:
            self._runs_layout.removeWidget(editor)
            editor.deleteLater()
        self._runs = []
        for i, run in enumerate(cfg.runs):
            editor = RunEditor(i, self._runs_box)
            editor.set_run(self._raw["runs"][i], cfg.run_train(i).encoder, run.name,
                           removable=len(cfg.runs) > 1)
            editor.objective_changed.connect(self._on_objective)
            editor.encoder_changed.connect(self._on_encoder)
            editor.params_changed.connect(self._on_run_params)
            editor.remove_requested.connect(self._on_remove_run)
            for box in (editor.k, editor.m, editor.beta, editor.alpha):
                box.refused.connect(self.refused)
            self._runs_layout.addWidget(editor)
            self._runs.append(editor)
        self.add_run.setEnabled(len(cfg.runs) < MAX_GUI_RUNS)

    def revert(self) -> None:
        """Show the last accepted scene again (after a change was refused)."""
        self.set_config(config_from_dict(self._raw), self._device, self._preset)

    def set_state(self, state: str) -> None:
        self.start_pause.setText("Pause" if state == "running" else "Start")

    def set_observation(self, index: int) -> None:
        self._raw.setdefault("problem", {})["observation"] = index
        self.observation.blockSignals(True)
        self.observation.setValue(index)
        self.observation.blockSignals(False)

    def set_seed(self, seed: int) -> None:
        self._raw["seed"] = seed
        self.seed.blockSignals(True)
        self.seed.setValue(seed)
        self.seed.blockSignals(False)

    def set_run_titles(self, names: list[str]) -> None:
        for editor, name in zip(self._runs, names):
            editor.setTitle(f"Run {editor.index + 1}: {name}")

    @property
    def run_editors(self) -> list[RunEditor]:
        return list(self._runs)

    def raw(self) -> dict[str, Any]:
        """A copy of the edited scene as a TOML-shaped dict."""
        return copy.deepcopy(self._raw)

    def speed_value(self) -> float | None:
        return self.speed.currentData()

    # ------------------------------------------------------------------ edits out
    def _edited(self, raw: dict[str, Any], reason: str) -> None:
        self.config_edited.emit(raw, reason)

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
        self._raw["problem"]["observation"] = index
        self.observation_changed.emit(index)

    @Slot(int)
    def _on_problem(self, _i: int) -> None:
        raw = self.raw()
        old = raw["problem"]
        # the options (σ, b, μ ...) and the observation belong to the old problem
        raw["problem"] = {"name": self.problem.currentData(), "learn_decoder": old["learn_decoder"],
                          "n_data": old["n_data"], "observation": 0, "decoder": old["decoder"]}
        self._edited(raw, f"problem → {self.problem.currentData()}")

    @Slot(bool)
    def _on_learn_decoder(self, on: bool) -> None:
        raw = self.raw()
        raw["problem"]["learn_decoder"] = on
        self._edited(raw, f"learn decoder {'on' if on else 'off'}")

    @Slot(float)
    def _on_lr(self, lr: float) -> None:
        if not (math.isfinite(lr) and lr > 0):
            return
        self._raw["train"]["lr"] = lr
        for run in self._raw["runs"]:
            run.pop("lr", None)
        self.lr_changed.emit(lr)

    @Slot(int)
    def _on_batch_size(self, value: int) -> None:
        raw = self.raw()
        raw["train"]["batch_size"] = value
        for run in raw["runs"]:
            run.pop("batch_size", None)
        self._edited(raw, f"batch size → {value}")

    @Slot(int)
    def _on_seed(self, value: int) -> None:
        raw = self.raw()
        raw["seed"] = value
        self._edited(raw, f"seed → {value}")

    @Slot(int)
    def _on_device(self, _i: int) -> None:
        raw = self.raw()
        raw["device"] = self.device.currentData()
        self._edited(raw, f"device → {raw['device']}")

    @Slot(int, str)
    def _on_objective(self, index: int, name: str) -> None:
        raw = self.raw()
        raw["runs"][index]["objective"] = name
        raw["runs"][index].pop("name", None)
        self._edited(raw, f"run {index + 1} objective → {name.upper()}")

    @Slot(int, str)
    def _on_encoder(self, index: int, name: str) -> None:
        raw = self.raw()
        raw["runs"][index]["encoder"] = name
        raw["runs"][index].pop("name", None)
        self._edited(raw, f"run {index + 1} encoder → {name}")

    @Slot(int, dict)
    def _on_run_params(self, index: int, params: dict) -> None:
        self._raw["runs"][index].update(params)
        self.run_params_changed.emit(index, params)

    @Slot(int)
    def _on_remove_run(self, index: int) -> None:
        raw = self.raw()
        if len(raw["runs"]) <= 1:
            return
        raw["runs"].pop(index)
        for run in raw["runs"]:  # "#n" suffixes of duplicate names follow the index
            if "#" in run.get("name", ""):
                run.pop("name")
        self._edited(raw, f"removed run {index + 1}")

    @Slot()
    def _on_add_run(self) -> None:
        raw = self.raw()
        if len(raw["runs"]) >= MAX_GUI_RUNS:
            return
        used = {run["objective"] for run in raw["runs"]}
        objective = next((o for o in _NEW_RUN_OBJECTIVES if o not in used), "iwae")
        last = raw["runs"][-1]
        run = {"objective": objective, "k": 1 if objective == "vae" else max(int(last.get("k", 1)), 16)}
        if "m" in OBJECTIVES[objective].params:
            run["m"] = 4
        if "encoder" in last:
            run["encoder"] = last["encoder"]
        raw["runs"].append(run)
        self._edited(raw, f"added run {len(raw['runs'])} ({objective.upper()})")


def _is_default_name(name: str, default: str, index: int) -> bool:
    return name == default or name == f"{default} #{index + 1}"
