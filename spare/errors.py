"""User-facing errors: the CLI prints these as one line and exits 2, never with a traceback."""


class UserError(ValueError):
    """Bad input from the user (a name, a path, a config key); the message says how to fix it."""
