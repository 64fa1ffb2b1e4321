"""The one error type the CLI turns into a single line on stderr and exit code 2."""


class SynthkdError(Exception):
    """A problem the user can fix: bad input, a missing file, an unreachable teacher.

    The message is one line that names the field, file or cause; the CLI prints it
    without a traceback and exits with code 2.
    """
