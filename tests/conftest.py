"""Test set-up: Qt offscreen, and no test may leave a thread running."""
import os
import threading

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import pytest  # noqa: E402
import torch  # noqa: E402

torch.set_num_threads(1)  # as the app does: tiny models are fastest on one intra-op thread


@pytest.fixture(autouse=True)
def no_leaked_threads():
    """Fail a test that leaves a Python thread (or a running QThread, through its Python wrapper) behind."""
    before = set(threading.enumerate())
    yield
    deadline = threading.Event()
    for _ in range(50):  # give finishing threads up to 1 s
        leaked = [t for t in threading.enumerate() if t not in before and t.is_alive() and not t.daemon]
        if not leaked:
            break
        deadline.wait(0.02)
    else:
        pytest.fail(f"test left threads running: {[t.name for t in leaked]}")
