"""Failures the probe reports as one line on stderr, each with its exit code.

xctl restarts a probe that exits, once a second, and never reads its stderr:
an exit code a supervisor can act on, and one line a person can, are all a
failure gets. The codes are documented in the README and in --help.
"""

from typing import Sequence

EXIT_OK = 0
EXIT_INTERNAL = 1
EXIT_USAGE = 2
EXIT_NO_PRIVILEGE = 3
EXIT_NO_BTF = 4
EXIT_BAD_INSTALL = 5
EXIT_KERNEL_UNSUPPORTED = 6
# Not a failure to start: --metrics could not be served, the stream ran
# without them; the code it exits with at the stop.
EXIT_METRICS_UNSERVED = 7


class ProbeError(Exception):
    """An expected failure: ``str(error)`` is the whole message, what to do included;
    ``details`` are lines that say more where there is room for them (``check``)."""

    exit_code = EXIT_INTERNAL

    def __init__(self, message: str, details: Sequence[str] = ()):
        super().__init__(message)
        self.details = tuple(details)


class NoPrivilege(ProbeError):
    exit_code = EXIT_NO_PRIVILEGE


class NoBTF(ProbeError):
    exit_code = EXIT_NO_BTF


class BadInstall(ProbeError):
    exit_code = EXIT_BAD_INSTALL


class KernelUnsupported(ProbeError):
    exit_code = EXIT_KERNEL_UNSUPPORTED
