"""VAE Explorer entry point: `python main.py [gui|run|snr|shot|list] ...` (see README)."""
from explorer.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
