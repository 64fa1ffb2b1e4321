"""The one error type the CLI turns into a single line on stderr and exit code 2."""


class SynthkdError(Exception):
    """A problem the user can fix: bad input, a missing file, an unreachable teacher.

    The message is one line that names the field, file or cause; the CLI prints it
    without a traceback and exits with code 2.
    """


class Terminated(BaseException):
    """SIGTERM (`kill PID`) or Ctrl-C during `synthkd run` (args: the signal number): the
    process unwinds, so Prefect's ephemeral API server and the run's logs are shut down,
    and the CLI exits 128 + the signal (143, 130) with one line. Left to Prefect's own
    bridge, the process dies by the signal and leaves the server orphaned (and click turns
    Ctrl-C into "Aborted!", exit 1). A BaseException, as KeyboardInterrupt is, so no
    `except Exception` on the way swallows it."""
