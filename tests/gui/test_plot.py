"""plot: the statistics against independent references (the t quantile by quadrature of its density,
the interval's coverage by simulation, slopes of exact power laws), and the figures written as PNG / SVG
by the CLI, with bad input as one line and exit 2. Also Session.render and _repr_png_."""
from __future__ import annotations

import math
import struct
from pathlib import Path

import numpy as np
import pytest

from explorer import Session
from explorer.cli import main
from explorer.core.config import config_from_dict
from explorer.core.errors import ConfigError
from explorer.core.files import write_metrics_csv
from explorer.core.sweep import FIXED_COLUMNS, SweepTable, table_csv
from explorer.gui.plot import loglog_slope, mean_interval, metric_lines, plot_snr, snr_lines, t975


def t_cdf_by_quadrature(q: float, df: int) -> float:
    """P(T ≤ q) for Student's t, integrating its density (written out here) with Simpson's rule."""
    log_c = math.lgamma((df + 1) / 2) - math.lgamma(df / 2) - 0.5 * math.log(df * math.pi)
    t = np.linspace(0.0, q, 20001)
    f = np.exp(log_c - (df + 1) / 2 * np.log1p(t * t / df))
    h = t[1] - t[0]
    return 0.5 + h / 3 * (f[0] + f[-1] + 4 * f[1:-1:2].sum() + 2 * f[2:-1:2].sum())


@pytest.mark.parametrize("df", [1, 2, 3, 5, 10, 29, 30, 31, 45, 200])
def test_t975_is_the_97_5_percent_quantile(df):
    assert t_cdf_by_quadrature(t975(df), df) == pytest.approx(0.975, abs=2e-5)


def test_the_interval_covers_the_true_mean_95_percent_of_the_time():
    rng = np.random.default_rng(0)
    hits = 0
    for _ in range(4000):
        mean, half, n = mean_interval(rng.normal(3.0, 2.0, size=5))
        hits += abs(mean - 3.0) <= half
    assert n == 5 and hits / 4000 == pytest.approx(0.95, abs=0.011)  # 3σ of a binomial(4000, 0.95)
    assert mean_interval([1.0, None, float("nan")])[1:] == (pytest.approx(math.nan, nan_ok=True), 1)


def test_loglog_slope_of_exact_power_laws_ignores_non_positive_values():
    k = np.array([1, 4, 16, 64, 256.0])
    assert loglog_slope(k, 3 * k**-0.5) == pytest.approx(-0.5)
    assert loglog_slope(np.r_[k, 2, 3], np.r_[2 * k**0.5, 0.0, -1.0]) == pytest.approx(0.5)
    assert math.isnan(loglog_slope([4, 4], [1, 2]))


def table(rows: list[dict], axes: tuple[str, ...]) -> SweepTable:
    columns = ("point", *axes, *FIXED_COLUMNS[1:])
    full = [{**dict.fromkeys(columns), "status": "ok", "error": "", **r} for r in rows]
    return SweepTable(full, columns, Path("results.csv"), axes=axes)


def snr_table() -> SweepTable:
    """SNR = c_seed · √M · K^(−½) (encoder) and √(MK) (decoder): exact power laws, one factor per seed."""
    rows = []
    for seed, c in ((0, 1.0), (1, 2.0), (2, 4.0)):
        for m in (1, 4):
            for k in (1, 4, 16, 64):
                common = {"point": f"{seed}-{m}-{k}", "seed": seed, "runs.0.m": m, "runs.0.k": k, "k": k, "m": m,
                          "objective": "miwae", "encoder": "linear", "run": f"MIWAE M={m} K={k}", "run_index": 0}
                rows += [{**common, "metric": "snr_encoder", "value": c * math.sqrt(m / k)},
                         {**common, "metric": "snr_decoder", "value": c * math.sqrt(m * k)},
                         {**common, "metric": "kl_qp", "value": c / m}]
    return table(rows, ("seed", "runs.0.m", "runs.0.k"))


def test_snr_lines_are_geometric_means_over_seeds_with_the_fitted_slopes():
    enc = snr_lines(snr_table(), "snr_encoder")
    assert [line.label for line in enc] == ["MIWAE M=1", "MIWAE M=4"]
    for line, m in zip(enc, (1, 4)):
        assert list(line.x) == [1, 4, 16, 64] and line.slope == pytest.approx(-0.5)
        expected = 2.0 * np.sqrt(m / np.array([1, 4, 16, 64]))  # geometric mean of 1, 2, 4 is 2
        assert np.allclose(line.mean, expected) and np.all(line.lo < line.mean) and np.all(line.mean < line.hi)
        assert np.allclose(line.lo * line.hi, line.mean**2)  # symmetric on the log axis
    assert [line.slope for line in snr_lines(snr_table(), "snr_decoder")] == pytest.approx([0.5, 0.5])


def test_metric_lines_follow_a_run_along_a_zipped_axis_and_average_over_seeds():
    product = metric_lines(snr_table(), "kl_qp", "runs.0.m")  # K is an axis of its own: a line per K
    assert [line.label for line in product] == ["MIWAE k=1", "MIWAE k=16", "MIWAE k=4", "MIWAE k=64"]
    zipped = [r for r in snr_table().rows if (r["m"], r["k"]) in ((1, 64), (4, 16))]  # M·K = 64
    [line] = metric_lines(table(zipped, ("seed", "runs.0.m", "runs.0.k")), "kl_qp", "runs.0.m")
    assert line.label == "MIWAE"  # the run's name changes along the axis, K with M
    assert list(line.x) == [1, 4] and np.allclose(line.mean, [7 / 3, 7 / 12]) and list(line.n) == [3, 3]
    half = t975(2) * np.std([1, 2, 4], ddof=1) / math.sqrt(3)
    assert np.allclose(line.hi - line.mean, [half, half / 4]) and np.allclose(line.mean - line.lo, [half, half / 4])
    with pytest.raises(ConfigError, match="--x: 'colour' is not an axis"):
        metric_lines(snr_table(), "kl_qp", "colour")
    with pytest.raises(ConfigError, match=r"--metric: no values of 'nope' .*metrics: kl_qp, snr_decoder, snr_encoder"):
        metric_lines(snr_table(), "nope", "runs.0.m")


def png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    return struct.unpack(">II", data[16:24])


def test_the_cli_draws_snr_and_metric_figures_as_png_and_svg(tmp_path, qapp, capsys):
    (tmp_path / "results.csv").write_text(table_csv(snr_table().rows, snr_table().columns), encoding="utf-8")
    assert main(["plot", "snr", str(tmp_path), "--out", str(tmp_path / "snr.png"), "--width", "1000"]) == 0
    assert png_size((tmp_path / "snr.png").read_bytes()) == (1000, pytest.approx(1000 * 520 / 1400, abs=2))
    assert main(["plot", "metric", str(tmp_path / "results.csv"), "--metric", "kl_qp", "--x", "runs.0.m",
                 "--out", str(tmp_path / "kl.svg"), "--style", "talk"]) == 0
    svg = (tmp_path / "kl.svg").read_text(encoding="utf-8")
    assert svg.lstrip().startswith("<?xml") and "<svg" in svg and "MIWAE" in svg
    assert sorted(p.name for p in tmp_path.iterdir()) == ["kl.svg", "results.csv", "snr.png"]  # no temporary files
    capsys.readouterr()


@pytest.mark.parametrize("args, message", [
    (["plot", "snr", "{tmp}/nothing", "--out", "{tmp}/a.png"], "no such file"),
    (["plot", "metric", "{tmp}", "--out", "{tmp}/a.png"], "--metric: a metric plot names its metric"),
    (["plot", "snr", "{tmp}", "--out", "{tmp}/a.jpg"], "must end in .png, .svg"),
    (["plot", "snr", "{tmp}", "--out", "{tmp}/a.png", "--width", "9"], "--width: must be in 64..16384"),
    (["plot", "curves", "{tmp}/results.csv", "--out", "{tmp}/a.png"], "not a metrics.csv"),
    (["plot", "snr", "{tmp}", "--out", "{tmp}/a.png", "--x", "seed"], "--x: only a metric plot"),
])
def test_bad_plot_input_is_one_line_and_exit_2(tmp_path, qapp, capsys, args, message):
    (tmp_path / "results.csv").write_text(table_csv(snr_table().rows, snr_table().columns), encoding="utf-8")
    assert main([a.replace("{tmp}", str(tmp_path)) for a in args]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1
    assert not (tmp_path / "a.png").exists()


def tiny_session() -> Session:
    return Session(config_from_dict({
        "device": "cpu", "problem": {"name": "gaussian", "n_data": 16}, "train": {"batch_size": 8, "hidden": [8]},
        "view": {"grid": 16, "samples": 4, "snr_every": 2, "snr_replicates": 4, "log_every": 1},
        "runs": [{"objective": "iwae", "k": 2}, {"objective": "vae"}]}))


def test_curves_come_from_a_metrics_csv(tmp_path, qapp):
    session = tiny_session()
    session.step(6)
    write_metrics_csv(tmp_path / "metrics.csv", session.metric_rows())
    assert main(["plot", "curves", str(tmp_path / "metrics.csv"), "--metric", "kl_qp,snr_encoder",
                 "--out", str(tmp_path / "c.png")]) == 0
    assert png_size((tmp_path / "c.png").read_bytes())[0] == 1400  # two panels of 700 px


def test_session_render_writes_the_figure_and_repr_png_gives_its_bytes(tmp_path, qapp):
    session = tiny_session()
    session.step(2)
    assert session.render(tmp_path / "s.png", width=800) is None
    assert png_size((tmp_path / "s.png").read_bytes()) == (800, 500)
    assert png_size(session._repr_png_())[0] == 1200
    session.render(tmp_path / "s.svg", style="talk")
    assert "<svg" in (tmp_path / "s.svg").read_text(encoding="utf-8")
    with pytest.raises(ConfigError, match="style: unknown style 'loud'"):
        session.render(tmp_path / "x.png", style="loud")
    with pytest.raises(ConfigError, match="panel: unknown panel 'nope'"):
        session.render(tmp_path / "x.png", panel="nope")
    assert not (tmp_path / "x.png").exists()


def test_plot_snr_refuses_a_table_without_snr(tmp_path, qapp):
    rows = [r for r in snr_table().rows if r["metric"] == "kl_qp"]
    with pytest.raises(ConfigError, match="no SNR values"):
        plot_snr(table(rows, ("seed", "runs.0.m", "runs.0.k")), tmp_path / "a.png")
