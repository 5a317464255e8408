"""The one kind of user-facing error: the CLI prints it as one line and exits 1."""


class SrkitError(Exception):
    """A user mistake or a bad input, explained in one line."""
