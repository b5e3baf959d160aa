"""The one writer of files (explorer.core.files), which the CLI and the GUI share, and the metric names
that metrics.csv and the `run` table take from snapshot.METRICS."""
from __future__ import annotations

import csv
import io

import pytest

from explorer.cli import RUN_TABLE
from explorer.core.errors import ConfigError
from explorer.core.files import WriteError, atomic_write, atomic_write_text, metrics_csv
from explorer.core.history import ROW_COLUMNS
from explorer.core.snapshot import METRICS


def test_a_failed_write_keeps_the_old_file_and_leaves_nothing_else(tmp_path):
    target = tmp_path / "metrics.csv"
    target.write_text("the old file")

    def half_then_disk_full(tmp: str) -> None:
        with open(tmp, "w") as f:
            f.write("half a file")
        raise OSError(28, "No space left on device")

    with pytest.raises(WriteError, match=r"cannot write .*metrics\.csv: No space left on device"):
        atomic_write(target, half_then_disk_full)
    assert target.read_text() == "the old file"
    assert [p.name for p in tmp_path.iterdir()] == ["metrics.csv"]


def test_an_error_that_is_not_a_write_error_passes_through_and_leaves_nothing(tmp_path):
    def broken(tmp: str) -> None:
        open(tmp, "w").close()
        raise ValueError("not an OS problem")

    with pytest.raises(ValueError, match="not an OS problem"):
        atomic_write(tmp_path / "out.txt", broken)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("where, reason", [("missing/out.txt", "does not exist"), ("adir", "it is a folder")])
def test_a_bad_destination_is_one_line_naming_the_path(tmp_path, where, reason):
    (tmp_path / "adir").mkdir()
    with pytest.raises(WriteError, match=reason) as info:
        atomic_write_text(tmp_path / where, "x")
    assert str(tmp_path / where) in str(info.value) and "\n" not in str(info.value)


def test_a_write_error_is_bad_input_and_an_os_error():
    """The CLI turns a ConfigError into exit 2; file dialogs and the GUI catch OSError."""
    assert issubclass(WriteError, ConfigError) and issubclass(WriteError, OSError)


def test_text_is_written_as_utf8_exactly(tmp_path):
    text = "run,step\nθ ∇ é,1\r\n"
    atomic_write_text(tmp_path / "out.csv", text)
    assert (tmp_path / "out.csv").read_bytes() == text.encode("utf-8")


def test_metrics_csv_has_every_metric_and_writes_values_exactly():
    rows = [{"run": "VAE K=1", "step": 10, "log_px": -2.5, "kl_qp": 0.1 + 0.2, "elbo": float("nan")}]
    header, line = list(csv.reader(io.StringIO(metrics_csv(rows))))
    assert header == ["run", "step", *ROW_COLUMNS] and set(METRICS) <= set(ROW_COLUMNS)
    cells = dict(zip(header, line))
    assert float(cells["kl_qp"]) == 0.1 + 0.2  # repr: the float comes back bit for bit
    assert cells["elbo"] == "" and cells["ess_frac"] == ""  # not finite, and unknown: empty cells


def test_the_run_table_shows_metrics_by_their_one_name():
    assert set(RUN_TABLE) <= set(METRICS)
