"""The one error type for bad input: its message names the key and the bad value."""


class ConfigError(ValueError):
    """Bad user input (config key, value, file or path). The CLI prints it as one line and exits 2."""
