"""Scene and session files: round trips, and clear errors for broken files."""
import numpy as np
import pytest

from explorer.core.config import config_from_dict
from explorer.core.errors import ConfigError
from explorer.core.files import open_scene, open_session, save_scene, save_session
from explorer.core.session import Session

TINY = {"problem": {"name": "bimodal", "n_data": 64}, "train": {"hidden": [16]},
        "view": {"grid": 40, "samples": 30, "snr_replicates": 8, "snr_every": 5},
        "runs": [{"objective": "vae"}, {"objective": "iwae", "k": 16}]}


def test_session_file_reopens_to_the_same_frame_and_trains_on_identically(tmp_path):
    s = Session(config_from_dict(TINY))
    s.step(23)
    s.set_observation(3)
    before = s.snapshot()
    save_session(s, tmp_path / "a.vaesession")
    t = open_session(tmp_path / "a.vaesession")
    after = t.snapshot()
    assert (after.step, after.observation) == (23, 3)
    for ra, rb in zip(before.runs, after.runs):
        assert np.array_equal(ra.log_q, rb.log_q) and np.array_equal(ra.log_post, rb.log_post)
        assert np.array_equal(ra.q_samples, rb.q_samples) and np.array_equal(ra.weights, rb.weights)
        assert ra.metrics == rb.metrics
    s.step(7)
    t.step(7)
    assert s.metric_rows()[-1] == t.metric_rows()[-1]  # optimizer state came back too


def test_scene_file_round_trip(tmp_path):
    cfg = config_from_dict({**TINY, "title": 'A "quoted" title', "seed": 5})
    save_scene(cfg, tmp_path / "scene.toml")
    assert open_scene(tmp_path / "scene.toml") == cfg


@pytest.mark.parametrize("content", [b"garbage", b"", b"\x80\x03}q\x00."])
def test_broken_session_file_is_a_config_error(tmp_path, content):
    path = tmp_path / "broken.vaesession"
    path.write_bytes(content)
    with pytest.raises(ConfigError, match="session file"):
        open_session(path)


def test_unwritable_destination_is_a_config_error_and_leaves_nothing(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(ConfigError):
        save_session(Session(config_from_dict(TINY)), blocker / "s.vaesession")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file"]


# --------------------------------------------------------------------------- untrusted files (issue 18)
import copy  # noqa: E402
import os  # noqa: E402
import zipfile  # noqa: E402

import torch  # noqa: E402

from explorer.cli import main  # noqa: E402
from explorer.core.files import validate_session_file  # noqa: E402


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """A session file after a few steps (so Adam has moments) and its loaded state."""
    path = tmp_path_factory.mktemp("saved") / "s.vaesession"
    s = Session(config_from_dict({**TINY, "runs": [{"objective": "vae"}, {"objective": "iwae", "k": 16,
                                                                         "encoder": "flow"}]}))
    s.step(6)
    save_session(s, path)
    return path, torch.load(path, weights_only=True)


def _write_state(tmp_path, state, name="bad.vaesession"):
    path = tmp_path / name
    torch.save(state, path)
    return path


def _adam_moment(state):
    return state["runs"][1]["optimizer"]["state"][0]


@pytest.mark.parametrize("damage, needle", [
    (lambda s: _adam_moment(s).update(exp_avg=torch.zeros(3, 7)), "exp_avg: expected shape"),
    (lambda s: _adam_moment(s).update(exp_avg_sq=_adam_moment(s)["exp_avg_sq"].double()), "float64"),
    (lambda s: _adam_moment(s).update(exp_avg_sq=-_adam_moment(s)["exp_avg_sq"] - 1), "negative"),
    (lambda s: _adam_moment(s).update(step=torch.tensor(float("nan"))), "step"),
    (lambda s: _adam_moment(s).pop("exp_avg"), "exp_avg"),
    (lambda s: s["runs"][1]["optimizer"]["state"].update({999: {}}), "no such parameter"),
    (lambda s: s["runs"][1]["optimizer"]["param_groups"][0].update(amsgrad=True), "amsgrad"),
    (lambda s: s["runs"][1]["optimizer"]["param_groups"][0].update(lr=float("inf")), "lr"),
    (lambda s: s["runs"][1]["optimizer"]["param_groups"][0].update(params=[0, 1]), "params"),
    (lambda s: s["runs"][0]["encoder"].update({"net.0.weight": torch.zeros(16, 3)}), "net.0.weight"),
    (lambda s: s["runs"][0]["encoder"].update({"net.0.weight": torch.full((16, 2), float("nan"))}), "non-finite"),
    (lambda s: s["runs"][0]["decoder"].pop("a"), "decoder"),
    (lambda s: s["runs"].pop(), "saved runs"),
    (lambda s: s.update(step=2**70), "step"),
    (lambda s: s.update(observation=64), "observation"),
    (lambda s: s.update(observation=-1), "observation"),
    (lambda s: s["runs"][0].update(diverged_step=10**6), "diverged_step"),
    (lambda s: s["history"]["VAE K=1"].update(kl_qp=[[0, 1.0], [10**9, 2.0]]), "history"),
    (lambda s: s["history"]["VAE K=1"].update(bogus=[]), "bogus"),
    (lambda s: s["rows"].append({"run": "VAE K=1", "step": 3, "kl_qp": "x"}), "rows"),
    (lambda s: s["config"]["view"].update(grid=5), "view.grid"),
])
def test_a_session_file_that_does_not_match_its_model_is_refused_at_open(tmp_path, saved, damage, needle):
    state = copy.deepcopy(saved[1])
    damage(state)
    path = _write_state(tmp_path, state)
    with pytest.raises(ConfigError) as err:
        open_session(path)
    assert needle in str(err.value) and str(path) in str(err.value)


def test_the_wrong_shaped_adam_moment_that_segfaulted_is_refused_before_any_step(tmp_path, saved):
    state = copy.deepcopy(saved[1])
    moment = _adam_moment(state)
    moment["exp_avg"] = moment["exp_avg"].reshape(-1)[:-1].clone()  # one element short: the fused kernel overran
    with pytest.raises(ConfigError, match="exp_avg"):
        validate_session_file(_write_state(tmp_path, state))


def test_a_zip_bomb_is_refused_before_it_is_inflated(tmp_path, saved, monkeypatch):
    monkeypatch.setenv("VAE_EXPLORER_MEMORY_BUDGET", "64MB")  # the inflated limit is a quarter: 16 MB
    bomb = tmp_path / "bomb.vaesession"
    with zipfile.ZipFile(saved[0]) as src, zipfile.ZipFile(bomb, "w") as dst:
        for item in src.infolist():
            dst.writestr(item, src.read(item))
        dst.writestr(zipfile.ZipInfo("archive/data/999"), b"\0" * 50_000_000, compress_type=zipfile.ZIP_DEFLATED)
    assert bomb.stat().st_size < 1_000_000
    with pytest.raises(ConfigError, match="inflates to 50,0"):
        open_session(bomb)


@pytest.mark.parametrize("make", ["fifo", "/dev/zero", "/dev/urandom", "folder", "big"])
def test_only_regular_files_under_the_limit_are_read(tmp_path, make):
    if make == "fifo":
        path = tmp_path / "pipe"
        os.mkfifo(path)  # no writer: a plain open would block for ever
    elif make == "folder":
        path = tmp_path
    elif make == "big":
        path = tmp_path / "big.toml"
        path.write_text("# " + "x" * (2 << 20))
    else:
        path = make
    with pytest.raises(ConfigError, match="regular file|limit"):
        open_scene(path)
    with pytest.raises(ConfigError, match="regular file|limit|session"):
        open_session(path)


def test_a_fifo_config_on_the_command_line_exits_2(tmp_path, capsys):
    os.mkfifo(tmp_path / "scene.toml")
    assert main(["run", "--config", str(tmp_path / "scene.toml")]) == 2
    assert "FIFO" in capsys.readouterr().err


def test_validate_session_file_returns_the_session_ready_to_replace_a_running_one(saved):
    session = validate_session_file(saved[0])
    assert session.step_count == 6  # the dry step ran on a copy
    snap = session.snapshot()
    assert snap.step == 6 and len(snap.runs) == 2


def test_validate_session_file_turns_a_failing_dry_step_into_a_config_error(saved, monkeypatch):
    def broken(self, n=1):
        raise RuntimeError("boom")

    monkeypatch.setattr(Session, "step", broken)
    with pytest.raises(ConfigError, match="cannot be shown or trained.*boom"):
        validate_session_file(saved[0])


def test_a_table_of_contents_listing_millions_of_members_is_refused_before_it_is_parsed(tmp_path, saved):
    import struct

    data = bytearray(saved[0].read_bytes())
    at = data.rfind(b"PK\x05\x06")
    data[at + 8:at + 12] = struct.pack("<HH", 0xFFFF - 1, 0xFFFF - 1)  # 65534 members claimed...
    data[at + 12:at + 16] = struct.pack("<I", 400 << 20)  # ...in a 400 MB directory
    path = tmp_path / "toc.vaesession"
    path.write_bytes(bytes(data))
    with pytest.raises(ConfigError, match="lists 65,534 members in 419,430,400 bytes"):
        open_session(path)
