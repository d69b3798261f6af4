"""The one error type users see: the CLI prints its message on one line and exits with 2."""


class BenchError(Exception):
    """Bad input or a missing resource; the message names the file or value and the fix."""
