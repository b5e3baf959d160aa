"""VAE Explorer entry point: `python main.py [gui|run|snr|shot|sweep|plot|list] ...` (see README)."""
from explorer.cli import entry

if __name__ == "__main__":
    entry()
