"""The project's own error type.

Every bad input a user can feed the library (a file that does not parse, a box
of negative size, a weights file of another architecture) raises
:class:`HNSEError` with a one-line message that names the file and, where it
applies, the line or frame. The CLI prints that line; the GUI shows it.
"""


class HNSEError(Exception):
    """A user-facing error whose message is one line naming what was wrong."""


class InputError(HNSEError, ValueError):
    """A file or value given by the user cannot be used."""
