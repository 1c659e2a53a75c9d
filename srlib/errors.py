"""The one exception type users see: its message is a single line that names the file and the fix."""


class SrlibError(Exception):
    """A user-facing error (bad data, bad checkpoint, bad parameter). The CLI prints it as one line."""
