"""VAE Explorer entry point: `python main.py [gui|run|snr|shot|list] ...` (see README)."""
import os
import signal
import sys


class _StartupSignal(BaseException):
    pass


def _on_startup_signal(signum, frame):
    raise _StartupSignal(signum)


def _exit(code: int) -> None:
    for sig in (signal.SIGINT, signal.SIGTERM, getattr(signal, "SIGHUP", None)):  # the work is done
        if sig is not None:
            signal.signal(sig, signal.SIG_IGN)
    # Every command has closed its files and windows by now. Skipping the interpreter's teardown makes
    # closing the window exit at once (torch's and Qt's teardown took 0.6-1.2 s) and avoids the abort
    # at exit that Python-owned graphics items can cause (pitfalls.md).
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (BrokenPipeError, OSError):  # a reader that went away (| head) is not an error
            pass
    os._exit(code)


if __name__ == "__main__":
    # Importing the package imports torch (a second or two): a signal in that time is one line and
    # 128 + its number, like everywhere else, never a traceback. explorer.cli.main installs its own latch.
    for _sig in (signal.SIGINT, signal.SIGTERM, getattr(signal, "SIGHUP", None)):
        if _sig is not None:
            signal.signal(_sig, _on_startup_signal)
    try:
        from explorer.cli import main

        code = main()
    except _StartupSignal as e:
        print(f"interrupted by {signal.Signals(e.args[0]).name} during start-up", file=sys.stderr)
        code = 128 + e.args[0]
    _exit(code)
