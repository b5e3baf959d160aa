"""VAE Explorer entry point: `python main.py [gui|run|snr|shot|list] ...` (see README)."""
import os
import sys

from explorer.cli import main

if __name__ == "__main__":
    code = main()
    # Every command has closed its files and windows by now. Skipping the interpreter's teardown makes
    # closing the window exit at once (torch's and Qt's teardown took 0.6-1.2 s) and avoids the abort
    # at exit that Python-owned graphics items can cause (pitfalls.md).
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (BrokenPipeError, OSError):  # a reader that went away (| head) is not an error
            pass
    os._exit(code)
