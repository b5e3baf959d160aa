"""The gradient histograms panel, the arrows layer and "one step, slowly" (issue 14).

- The histogram's mean line and ± sd band are the SNR probe's numbers for the parameter, and its bars
  are the replicate values (as a density); zero is marked; all runs of a group share their axes; frozen
  axes stay put.
- The arrows are the snapshot's shares at one scale per panel (the thick one their sum, from q's
  location), the scale note says that scale, and a flow's arrows say what they are gradients of.
- "One step, slowly" goes through its four stages in order, named in the status bar, steps exactly once,
  and leaves view.arrows as it found it.
"""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from explorer.core.config import config_from_dict
from explorer.core.session import Session
from explorer.core.snapshot import GradientSample

from fake_snapshot import make_snapshot
from window_helpers import tiny, wait_snapshot


def _sample(group: str, values: np.ndarray, step: int = 40) -> GradientSample:
    values = np.asarray(values, dtype=np.float32)
    return GradientSample(group, "b[0]" if group == "encoder" else "mu[0]", f"{group}: label", values,
                          float(values.mean()), float(values.std(ddof=1)), len(values), step)


def _with_gradients(snapshot, spreads=(1.0, 0.5, 0.1), means=(0.8, 0.2, 0.02), decoder=True, seed=0):
    rng = np.random.default_rng(seed)
    runs = []
    for run, spread, mean in zip(snapshot.runs, spreads, means):
        samples = [_sample("encoder", mean + spread * rng.standard_normal(200))]
        if decoder:
            samples.append(_sample("decoder", 1.0 + spread * rng.standard_normal(200)))
        runs.append(dataclasses.replace(run, gradients=tuple(samples)))
    return dataclasses.replace(snapshot, runs=tuple(runs), show_gradients=True)


@pytest.fixture
def figure(qtbot):
    from explorer.gui.figure import Figure

    fig = Figure()
    qtbot.addWidget(fig)
    fig.resize(1600, 1000)
    return fig


def test_the_panel_is_in_the_figure_only_when_the_scene_asks(figure):
    plain = make_snapshot(3)
    figure.update_snapshot(plain)
    assert "gradients" not in figure.panel_names() and figure.gradients is None
    figure.update_snapshot(_with_gradients(plain))
    assert figure.panel_names()[-1] == "gradients"
    figure.update_snapshot(plain)
    assert "gradients" not in figure.panel_names()


def test_mean_sd_and_zero_are_marked_and_the_bars_are_the_values(figure):
    snap = _with_gradients(make_snapshot(3))
    figure.update_snapshot(snap)
    panel = figure.gradients
    for group in ("encoder", "decoder"):
        ranges = set()
        for hist, run in zip(panel.rows[group], snap.runs):
            sample = next(s for s in run.gradients if s.group == group)
            assert hist.mean_line.value() == pytest.approx(sample.mean)
            assert hist.band.getRegion() == pytest.approx((sample.mean - sample.sd, sample.mean + sample.sd))
            assert hist.zero_line.value() == 0.0 and hist.zero_line.isVisible()
            edges, density = hist.curve.getData()
            inside = (sample.values >= edges[0]) & (sample.values <= edges[-1])
            assert float(np.sum(density * np.diff(edges))) == pytest.approx(inside.mean(), rel=1e-6)
            assert inside.mean() > 0.98  # the common range holds (almost) every run's values
            ranges.add(tuple(np.round(hist.plot.getViewBox().viewRange()[0], 9)))
        assert len(ranges) == 1, "every run of a group on the same x axis"


def test_histogram_mean_and_sd_are_the_probes_for_that_parameter(figure):
    """A real session: the panel draws the probe's mean and sd of the chosen parameter, which are the
    mean and sd of the replicate values it holds, and |mean|/sd is the SNR metric of that parameter."""
    session = Session(config_from_dict(tiny(view={"grid": 16, "samples": 0, "snr_every": 3, "snr_replicates": 32,
                                                  "gradients": True},
                                            problem={"name": "gaussian", "n_data": 32, "learn_decoder": True})))
    session.step(3)
    snap = session.snapshot()
    figure.update_snapshot(snap)
    for hist, run in zip(figure.gradients.rows["encoder"], snap.runs):
        sample = run.gradients[0]
        assert len(sample.values) == sample.replicates == 32
        mean, sd = hist.mean_line.value(), 0.5 * np.diff(hist.band.getRegion())[0]
        assert mean == pytest.approx(float(np.mean(sample.values.astype(np.float64))), rel=1e-5)
        assert sd == pytest.approx(float(np.std(sample.values.astype(np.float64), ddof=1)), rel=1e-5)
        assert abs(mean) / sd == pytest.approx(run.metrics["snr_encoder_param"], rel=1e-5)


def test_a_frozen_decoder_has_no_decoder_row_and_frozen_axes_stay(figure):
    snap = _with_gradients(make_snapshot(3), decoder=False)
    figure.update_snapshot(snap)
    assert list(figure.gradients.rows) == ["encoder"]
    figure.set_gradients_frozen(True)
    hist = figure.gradients.rows["encoder"][0]
    before = hist.plot.getViewBox().viewRange()
    figure.update_snapshot(_with_gradients(make_snapshot(3), spreads=(5.0, 3.0, 2.0), decoder=False, seed=1))
    assert hist.plot.getViewBox().viewRange() == before
    figure.set_gradients_frozen(False)
    figure.update_snapshot(_with_gradients(make_snapshot(3), spreads=(5.0, 3.0, 2.0), decoder=False, seed=1))
    assert hist.plot.getViewBox().viewRange()[0][1] > 2 * before[0][1]


def test_each_new_probe_is_drawn_even_though_unchanged_ones_are_skipped(figure):
    """The panel redraws only when a probe changed (one every ~20 steps), so frames between probes cost
    nothing; a new probe of the same parameters must still show."""
    first = _with_gradients(make_snapshot(3))
    figure.update_snapshot(first)
    hist = figure.gradients.rows["encoder"][0]
    figure.update_snapshot(first)
    assert hist.mean_line.value() == pytest.approx(first.runs[0].gradients[0].mean)
    later = _with_gradients(make_snapshot(3), means=(-0.6, 0.1, 0.01), seed=2)
    figure.update_snapshot(later)
    sample = later.runs[0].gradients[0]
    assert hist.mean_line.value() == pytest.approx(sample.mean)
    edges, density = hist.curve.getData()
    assert np.array_equal(np.histogram(sample.values.astype(np.float64), bins=edges)[0] > 0, density > 0)


def _with_arrows(snapshot, wrt="q's mean"):
    rng = np.random.default_rng(3)
    runs = []
    for run in snapshot.runs:
        shares = rng.standard_normal((len(run.particles), 2)).astype(np.float32)
        runs.append(dataclasses.replace(run, arrows=shares, arrow_sum=shares.sum(0).astype(np.float64),
                                        arrow_origin=np.array([0.5, 0.2]), arrows_wrt=wrt))
    return dataclasses.replace(snapshot, runs=tuple(runs), show_arrows=True)


def test_arrows_are_the_shares_at_one_scale_and_the_note_says_it(figure):
    from explorer.gui.panels.arrows import LONGEST_MAX, LONGEST_MIN

    snap = _with_arrows(make_snapshot(3, k=8))
    figure.update_snapshot(snap)
    for panel, run in zip(figure.posteriors, snap.runs):
        layer = panel.arrows
        assert layer.visible
        x, y = layer.shares.getData()
        starts, tips = np.stack([x[0::6], y[0::6]], 1), np.stack([x[1::6], y[1::6]], 1)
        np.testing.assert_allclose(starts, run.particles, rtol=1e-6)
        np.testing.assert_allclose(tips - starts, layer.scale * run.arrows, rtol=1e-5, atol=1e-6)
        tx, ty = layer.total.getData()
        np.testing.assert_allclose([tx[0], ty[0]], run.arrow_origin)
        np.testing.assert_allclose([tx[1] - tx[0], ty[1] - ty[0]], layer.scale * run.arrow_sum, rtol=1e-6)
        assert f"{layer.scale:g} × the gradient" in layer.note.toPlainText()
        assert "q's mean" in layer.note.toPlainText()
        x0, x1, y0, y1 = panel.view_rect()
        longest = layer.scale * max(np.linalg.norm(run.arrows, axis=1).max(), np.linalg.norm(run.arrow_sum))
        assert LONGEST_MIN <= longest / min(x1 - x0, y1 - y0) <= LONGEST_MAX
    flow = _with_arrows(make_snapshot(3, k=8), wrt="the flow's shift μ(x)")
    figure.update_snapshot(flow)
    assert "the flow's shift μ(x)" in figure.posteriors[0].arrows.note.toPlainText()
    figure.update_snapshot(dataclasses.replace(flow, show_arrows=False))
    assert not figure.posteriors[0].arrows.visible


def test_the_stages_hide_and_show_what_they_should(figure):
    snap = dataclasses.replace(_with_arrows(make_snapshot(2, k=8)), show_arrows=False)
    figure.update_snapshot(snap)
    layer = figure.posteriors[0].arrows
    layer.set_stage("draw")
    assert layer.plain.isVisible() and not figure.posteriors[0].particles.isVisible() and not layer.visible
    layer.set_stage("weight")
    assert not layer.plain.isVisible() and figure.posteriors[0].particles.isVisible() and not layer.visible
    layer.set_stage("arrows")
    assert layer.visible  # whatever view.arrows says
    layer.set_stage(None)
    assert not layer.visible
    with pytest.raises(ValueError):
        layer.set_stage("nonsense")


def test_one_step_slowly_runs_its_stages_in_order_and_steps_once(open_window, qtbot):
    window = open_window(config_from_dict(tiny(view={"grid": 16, "samples": 20, "snr_every": 0})))
    assert not window.config.view.arrows
    slow = window.slow_step
    slow.hold_ms = 30
    stages, messages = [], []
    slow.stage_changed.connect(lambda name: (stages.append(name), messages.append(window.messages.message_text())))
    step = window.last_snapshot.step
    with qtbot.waitSignal(slow.finished, timeout=60_000) as done:
        window.action_map["step_slowly"].trigger()
    assert done.args == [True]
    assert stages == ["draw", "weight", "arrows", "update", ""]
    assert [m.split(" · ")[1].split(" ")[0] for m in messages[:4]] == ["1/4", "2/4", "3/4", "4/4"]
    assert not window.config.view.arrows and not window.action_map["arrows"].isChecked()
    snap = wait_snapshot(qtbot, window, lambda s: not s.show_arrows)
    assert snap.step == step + 1
    assert all(p.arrows.stage is None for p in window.figure.posteriors)


def test_the_view_menu_toggles_histograms_and_arrows_live(open_window, qtbot):
    window = open_window()
    builds = window.controller.builds
    window.action_map["gradients"].trigger()
    window.action_map["arrows"].trigger()
    snap = wait_snapshot(qtbot, window, lambda s: s.show_gradients and s.show_arrows)
    assert window.config.view.gradients and window.config.view.arrows
    assert window.controller.builds == builds, "a live edit: no new session"
    assert "gradients" in window.figure.panel_names()
    assert snap.runs[1].arrows is not None and window.figure.posteriors[1].arrows.visible


def test_the_histograms_parameters_are_chosen_in_a_dialog_and_a_bad_name_is_refused(open_window, qtbot, monkeypatch):
    from explorer.gui import main_window

    window = open_window(config_from_dict(tiny(view={"grid": 16, "samples": 0, "snr_every": 1, "snr_replicates": 16})))
    window.action_map["gradients"].trigger()
    window.action_map["step"].trigger()
    snap = wait_snapshot(qtbot, window, lambda s: bool(s.runs[0].gradients))
    default = snap.runs[0].gradients[0].parameter  # NAME[0]
    chosen = default.replace("[0]", "[1]")
    answers = iter([(chosen, True), ("", True)])
    monkeypatch.setattr(main_window.QInputDialog, "getText", staticmethod(lambda *a, **k: next(answers)))
    window.action_map["gradient_parameters"].trigger()
    assert window.config.view.gradients_encoder == chosen and window.config.view.gradients_decoder == ""
    window.action_map["step"].trigger()
    wait_snapshot(qtbot, window, lambda s: bool(s.runs[0].gradients) and s.runs[0].gradients[0].parameter == chosen,
                  timeout=60_000)
    messages = []
    window.messages.show_message = lambda text, *a, **k: messages.append(text)
    answers = iter([("no_such_parameter", True), ("", True)])
    window.action_map["gradient_parameters"].trigger()
    qtbot.waitUntil(lambda: any("Refused" in m and "no_such_parameter" in m for m in messages), timeout=60_000)
    qtbot.waitUntil(lambda: window.config.view.gradients_encoder == chosen, timeout=60_000)  # the running one


def test_the_view_menu_turns_q_star_and_the_gaps_off_and_on_live(open_window, qtbot):
    window = open_window()
    builds = window.controller.builds
    assert window.config.view.q_star and window.action_map["q_star"].isChecked()
    window.action_map["step"].trigger()
    wait_snapshot(qtbot, window, lambda s: "amortisation_gap" in s.runs[0].metrics, timeout=60_000)
    window.action_map["q_star"].trigger()
    snap = wait_snapshot(qtbot, window, lambda s: all("amortisation_gap" not in r.metrics for r in s.runs))
    assert not window.config.view.q_star and not window.action_map["q_star"].isChecked()
    assert all(r.q_star_log_q is None for r in snap.runs)
    assert not any(p.gap_text.isVisible() for p in window.figure.posteriors)
    window.action_map["q_star"].trigger()
    wait_snapshot(qtbot, window, lambda s: "amortisation_gap" in s.runs[0].metrics, timeout=60_000)
    assert window.config.view.q_star and window.controller.builds == builds, "live edits: no new session"
