"""The play loop (core/player.py): cadence, pause/step/stop, live commands and requests applied between
steps, refused and failing commands reported as events, builds that keep the old session on failure,
and the scene's step limit. Everything runs in the test's thread: ``serve()`` is a plain generator."""
from __future__ import annotations

import math

import pytest

from explorer.core.config import config_from_dict
from explorer.core.player import Built, BuildFailed, Failed, Notice, Player, Refused, Reply
from explorer.core.session import Session
from explorer.core.snapshot import Snapshot

from test_session import tiny


def played(player: Player, **kwargs) -> list:
    """Every event of ``serve()`` until it ends."""
    return list(player.serve(**kwargs))


def steps_of(events) -> list[int]:
    return [e.step for e in events if isinstance(e, Snapshot)]


def test_a_cadence_yields_exactly_every_n_steps():
    player = Player(Session(tiny()))
    player.send("set_cadence", every_steps=5)
    player.send("resume")
    assert steps_of(played(player, max_steps=20)) == [0, 5, 10, 15, 20]
    assert player.session.step_count == 20


def test_serving_continues_from_the_current_step():
    session = Session(tiny())
    session.step(3)
    player = Player(session)
    player.send("set_cadence", every_steps=3)
    player.send("resume")
    assert steps_of(played(player, max_steps=9))[-3:] == [3, 6, 9]


def test_live_commands_apply_between_steps():
    player = Player(Session(tiny()))
    player.send("set_cadence", every_steps=5)
    player.send("resume")
    seen = []
    for event in player.serve(max_steps=20):
        assert not isinstance(event, Refused)
        if isinstance(event, Snapshot):
            seen.append((event.step, event.runs[0].lr, event.runs[0].k))
            if event.step == 5:
                player.send("set_lr", run=0, lr=0.05)
                player.send("set_run", run=0, k=3)
    assert seen[0] == (0, 0.003, 8) and (5, 0.003, 8) in seen
    after = [(lr, k) for step, lr, k in seen if step > 5]
    assert after and all(v == (0.05, 3) for v in after)
    assert seen[-1][0] == 20


def test_stop_ends_serving_and_pause_holds_training():
    player = Player(Session(tiny()))
    player.send("set_cadence", every_steps=2)
    player.send("resume")
    seen = []
    for event in player.serve(max_steps=100):
        if not isinstance(event, Snapshot):
            continue
        seen.append((event.step, event.paused))
        if event.step == 4 and not event.paused:
            player.send("pause")
            player.send("step", n=3)
        elif event.paused and event.step == 7:
            player.send("stop")
    assert seen[-1] == (7, True) and player.session.step_count == 7


@pytest.mark.parametrize("name, kwargs, key", [
    ("set_lr", {"run": 0, "lr": -1.0}, "lr"),
    ("set_run", {"run": 0, "k": 0}, "k"),
    ("set_observation", {"index": 10**6}, "observation"),
    ("warp", {}, "warp"),
    ("step", {"n": "x"}, "step"),
    ("set_lr", {"lr": 0.1, "run": 9}, "runs"),
    ("set_speed", {"steps_per_s": "fast"}, "set_speed"),
])
def test_a_refused_command_is_an_event_and_training_goes_on(name, kwargs, key):
    player = Player(Session(tiny()))
    player.send("set_cadence", every_steps=5)
    player.send("resume")
    events = []
    for event in player.serve(max_steps=15):
        events.append(event)
        if isinstance(event, Snapshot) and event.step == 5 and not any(isinstance(e, Refused) for e in events):
            player.send(name, **kwargs)  # once (the refusal's own snapshot is at step 5 too)
    refused = [e for e in events if isinstance(e, Refused)]
    assert len(refused) == 1 and key in refused[0].message and "\n" not in refused[0].message
    assert refused[0].config == player.session.config  # the config the session keeps
    assert steps_of(events)[-1] == 15
    assert player.session.snapshot().runs[0].lr == 0.003 and player.session.snapshot().runs[0].k == 8


def test_requests_are_answered_with_data():
    player = Player(Session(tiny()))
    player.send("step", n=10)
    player.send("metric_rows", request_id=7)
    player.send("summary", request_id=8)
    player.send("stop")
    replies = {e.request_id: e for e in played(player) if isinstance(e, Reply)}
    assert replies[7].error is None and replies[7].value[-1]["step"] == 10
    assert replies[8].value["steps"] == 10


def test_a_request_that_fails_is_answered_with_its_error(tmp_path):
    player = Player(Session(tiny()))
    player.send("save_session", request_id=1, path=str(tmp_path / "missing-folder" / "s.vaesession"))
    player.send("stop")
    (reply,) = [e for e in played(player) if isinstance(e, Reply)]
    assert reply.error and "missing-folder" in reply.error and reply.value is None


def test_a_failed_build_keeps_the_old_session_and_a_good_one_replaces_it():
    session = Session(tiny())
    player = Player(session)
    bad = tiny()
    player.send("build", config=bad, reason="boom", tag="t1")
    player.send("stop")

    def broken(_config):
        raise ValueError("no such thing")

    player._build_session = broken
    events = played(player)
    (failed,) = [e for e in events if isinstance(e, BuildFailed)]
    assert failed.reason == "boom" and failed.tag == "t1" and "no such thing" in failed.message
    assert player.session is session

    player = Player(session)
    other = config_from_dict({**config_to_raw(tiny()), "seed": 5})
    player.send("build", config=other, reason="new", tag="t2")
    events = []
    for event in player.serve():
        events.append(event)
        if isinstance(event, Snapshot) and any(isinstance(e, Built) for e in events):
            player.send("stop")  # the new session's first snapshot follows its Built event
    (built,) = [e for e in events if isinstance(e, Built)]
    assert built.tag == "t2" and built.config.seed == 5 and player.session is not session
    assert events[-1].step == 0 and events.index(built) == len(events) - 2


def config_to_raw(config):
    from explorer.core.config import config_to_dict

    return config_to_dict(config)


def test_a_failing_step_is_reported_and_the_loop_pauses_and_serves_on(monkeypatch):
    session = Session(tiny())
    player = Player(session)
    calls = {"n": 0}
    real = session._train_step

    def flaky(run, batch):
        calls["n"] += 1
        if calls["n"] == 7:
            raise FloatingPointError("loss is NaN")
        return real(run, batch)

    monkeypatch.setattr(session, "_train_step", flaky)
    player.send("resume")
    events = []
    for event in player.serve(max_steps=50):
        events.append(event)
        if isinstance(event, Failed):
            player.send("reset")
            player.send("stop")
    (failed,) = [e for e in events if isinstance(e, Failed)]
    assert "FloatingPointError" in failed.head and failed.run == session.runs[0].cfg.name and failed.step == 3
    assert "Traceback" in failed.details
    assert player.paused and player.session.step_count == 0  # reset went through after the failure


def test_the_scene_step_limit_pauses_once_and_start_goes_on():
    player = Player(Session(tiny(steps=6)))
    player.send("set_cadence", every_steps=1)
    player.send("resume")
    events = []
    for event in player.serve(max_steps=12):
        events.append(event)
        if isinstance(event, Notice):
            assert event.paused and "6 steps" in event.text
            player.send("resume")
    notices = [e for e in events if isinstance(e, Notice)]
    assert len(notices) == 1
    assert steps_of(events)[-1] == 12  # Start went on past the limit


def test_snapshots_carry_the_play_state_and_rate():
    player = Player(Session(tiny()))
    player.send("resume")
    snaps = [e for e in played(player, max_steps=30) if isinstance(e, Snapshot)]
    assert snaps[0].paused and snaps[0].steps_per_s == 0.0
    assert not snaps[-1].paused and math.isfinite(snaps[-1].steps_per_s)


class CountingJob:
    name = "a counting job"

    def __init__(self, slices: int, fail: bool = False) -> None:
        self.left, self.fail = slices, fail

    def work(self, seconds: float) -> bool:
        if self.fail:
            raise ArithmeticError("bad fit")
        self.left -= 1
        return self.left <= 0


def test_background_work_runs_while_paused_and_its_result_shows():
    session = Session(tiny())
    session._jobs.append(CountingJob(3))
    player = Player(session)
    events = []
    for event in player.serve():
        events.append(event)
        if not session.background_pending():
            player.send("stop")
    assert not session.background_pending()
    assert len(steps_of(events)) >= 2 and session.step_count == 0  # a fresh snapshot after it finished


def test_background_work_takes_a_bounded_share_while_training():
    session = Session(tiny())
    session._jobs.append(CountingJob(10**9))  # never finishes
    player = Player(session)
    player.send("resume")
    played(player, max_steps=40)
    assert session.step_count == 40 and session.background_pending()


def test_a_failing_background_job_is_dropped_and_reported():
    session = Session(tiny())
    session._jobs.append(CountingJob(1, fail=True))
    player = Player(session)
    for event in player.serve():
        if not session.background_pending():
            player.send("stop")
    assert any("a counting job failed: ArithmeticError: bad fit" in w for w in session.snapshot().warnings)


def test_background_work_waits_while_x_is_dragged_and_runs_once_it_is_still(monkeypatch):
    """A q* fit for an x that the drag has already left is wasted: while free observations keep coming
    (within DRAG_QUIET_S of each other) no background slice runs; once x is still, the fit runs."""
    from explorer.core import player as player_module

    session = Session(tiny())
    calls: list[float] = []
    real = session.background_work
    monkeypatch.setattr(session, "background_work", lambda seconds: calls.append(seconds) or real(seconds))
    player = Player(session)
    monkeypatch.setattr(player_module, "DRAG_QUIET_S", 1e9)  # every move counts as part of one long drag
    moves = iter([[0.5 * i, 0.3] for i in range(1, 7)])
    player.send("set_observation", point=next(moves))
    still = False
    for event in player.serve():
        if not isinstance(event, Snapshot) or event.step != 0:
            continue
        if not still:
            assert session.background_pending() and calls == []
            point = next(moves, None)
            if point is not None:
                player.send("set_observation", point=point)
            else:  # the drag ends: x stays where it is
                still = True
                monkeypatch.setattr(player_module, "DRAG_QUIET_S", 0.0)
        elif event.runs[0].q_star_log_q is not None:
            player.send("stop")
    assert calls  # the fit ran once x was still, and its q* was drawn


def test_a_fit_that_finishes_between_cadence_steps_waits_for_the_next_one():
    """A GIF's frames come exactly every N steps: a q* fit finishing in the background between two of them
    shows in the next one instead of in a frame of its own."""
    player = Player(Session(tiny()))
    player.send("set_cadence", every_steps=7)
    player.send("resume")
    events = played(player, max_steps=210)
    assert steps_of(events) == list(range(0, 211, 7))
    assert any(e.runs[0].q_star_log_q is not None for e in events if isinstance(e, Snapshot)), "a fit finished"
