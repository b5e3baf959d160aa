"""The window's K, M and batch-size boxes stop where the resource budget does (issue 18), not at fixed
maxima: the largest value each box takes is the largest the session's own check admits.

The memory budget is set far above need and the time limit low, so the limits are set by the time
estimate alone, which reads no clock: the same on every machine. The reference is the budget's check
itself (``check_session`` on the config with the value set), not the bisection the window uses.
"""
from __future__ import annotations

import dataclasses

import pytest
from PySide6.QtCore import Qt

from window_helpers import tiny

from explorer.core import budget
from explorer.core.config import config_from_dict


@pytest.fixture
def time_bound_budget(monkeypatch):
    monkeypatch.setenv("VAE_EXPLORER_MEMORY_BUDGET", "64GB")
    monkeypatch.setenv("VAE_EXPLORER_STEP_SECONDS", "0.05")


def _runs_with(config, index, **changes):
    runs = list(config.runs)
    runs[index] = dataclasses.replace(runs[index], **changes)
    return dataclasses.replace(config, runs=tuple(runs))


def _admitted(config) -> bool:
    try:
        budget.check_session(config)
    except budget.BudgetError:
        return False
    return True


def _largest_admitted(config, index, key):
    """The box's maximum must be admitted, and one more must not."""
    box_max = None
    for value in range(1, 1_000_000):  # coarse walk, then exact: the reference does not bisect
        if not _admitted(_runs_with(config, index, **{key: value * 64})):
            lo = (value - 1) * 64
            box_max = next(v for v in range(max(lo, 1), value * 64 + 1)
                           if not _admitted(_runs_with(config, index, **{key: v + 1})))
            break
    return box_max


def _type(qtbot, box, text: str) -> None:
    box.setFocus()
    box.selectAll()
    qtbot.keyClicks(box, text)
    qtbot.keyClick(box, Qt.Key.Key_Return)


SCENE = tiny(runs=[{"objective": "vae"}, {"objective": "miwae", "k": 4, "m": 2}])


def test_k_and_m_stop_at_the_largest_value_the_budget_admits(open_window, time_bound_budget):
    window = open_window(config_from_dict(SCENE))
    config = window.controller.config
    editors = window.controls.run_editors
    for index, key, box in ((0, "k", editors[0].k), (1, "k", editors[1].k), (1, "m", editors[1].m)):
        expected = _largest_admitted(config, index, key)
        assert expected is not None and expected < box.config_max  # the budget binds, not the config
        assert box.maximum() == expected, (index, key)
        assert box.budget_limited
        assert f"fits {box.label} ≤ {expected} (memory/time budget)" in box.toolTip()


def test_a_k_over_the_budget_is_refused_at_the_box_saying_what_fits(open_window, qtbot, time_bound_budget):
    window = open_window(config_from_dict(SCENE))
    box = window.controls.run_editors[0].k
    top = box.maximum()
    assert top == _largest_admitted(window.controller.config, 0, "k")
    builds, before = window.controller.builds, window.controller.config
    with qtbot.waitSignal(window.controls.refused, timeout=12_000) as refused:
        _type(qtbot, box, str(top * 10))  # its last digit is the one refused
    assert refused.args[0] == f"K: {top * 10} is refused; this scene fits K ≤ {top} (memory/time budget)"
    assert window.messages.message_text() == f"Refused: {refused.args[0]}"
    assert window.controller.config.runs[0].k <= top
    assert window.controller.builds == builds and window.controller.config.runs[1] == before.runs[1]


def test_the_limits_follow_the_config_shown(open_window, qtbot, time_bound_budget):
    """Raising one run's K leaves less time for the other's: its box's maximum falls."""
    window = open_window(config_from_dict(SCENE))
    other = window.controls.run_editors[1].k
    top_before = other.maximum()
    editor = window.controls.run_editors[0]
    k = editor.k.maximum() // 2
    editor.k.setValue(k)  # a live edit: the controller's config changes at once, the session at its next step
    assert window.controller.config.runs[0].k == k
    assert other.maximum() < top_before
    assert other.maximum() == _largest_admitted(window.controller.config, 1, "k")


def test_the_limits_are_computed_once_per_config(open_window, time_bound_budget):
    window = open_window(config_from_dict(SCENE))
    controls, config = window.controls, window.controller.config
    computed = controls.budget_limits.computed
    for _ in range(3):
        controls.set_config(config, window.controller.device, window.controller.preset)
    assert controls.budget_limits.computed == computed
    controls.set_config(_runs_with(config, 0, k=3), window.controller.device, None)
    assert controls.budget_limits.computed == computed + 1


def test_a_box_never_shows_less_than_the_running_value(open_window, time_bound_budget, monkeypatch):
    """If memory shrinks after a session was admitted, its K stays shown (and is the box's maximum)."""
    window = open_window(config_from_dict(SCENE))
    config = _runs_with(window.controller.config, 0, k=40)
    monkeypatch.setattr(budget, "max_admissible", lambda *args, **kwargs: None)  # nothing fits any more
    window.controls.set_config(config, window.controller.device, None)
    box = window.controls.run_editors[0].k
    assert box.value() == 40 and box.maximum() == 40 and box.budget_limited
