"""libbpf's own words about a failure, for the message that reports it.

The binding captures libbpf's log instead of letting it reach stderr (a pipe
nobody reads under xctl), keeping every warning since the last reset: the
first is the root cause, where an errno alone would say only "invalid
argument", and a program the kernel refused brings the verifier's log.
"""

import re
from typing import NamedTuple, Optional

from .binding import ffi, lib

PREFIX = "libbpf: "
# How libbpf (1.0 and later) passes on the log of the load it retried with one.
LOAD_LOG = re.compile(r"prog '([^']+)': -- BEGIN PROG LOAD LOG --\n(.*?)-- END PROG LOAD LOG --",
                      re.DOTALL)
# The verifier's words for a helper the program's type may not call
# (check_helper_call: "unknown func %s#%d", the same from 5.10 to 6.18).
UNKNOWN_HELPER = re.compile(r"^unknown func (\w+)#\d+$", re.MULTILINE)


class LoadLog(NamedTuple):
    program: str
    text: str


def reset() -> None:
    """Forgets what libbpf said before the call about to be made."""
    lib.xp_reset_libbpf_log()


def _said() -> str:
    return ffi.string(lib.xp_libbpf_log()).decode(errors="replace")


def says() -> str:
    """libbpf's first warning since the last reset, as " (libbpf: ...)", or ""."""
    message = _said().split("\n", 1)[0].strip().removeprefix(PREFIX)
    return f" (libbpf: {message})" if message else ""


def load_log() -> Optional[LoadLog]:
    """The verifier's log libbpf passed on since the last reset, if it did."""
    found = LOAD_LOG.search(_said())
    return LoadLog(found.group(1), found.group(2)) if found else None


def unknown_helper(log: Optional[LoadLog]) -> Optional[str]:
    """The helper the verifier refused the program for in ``log``, if that is
    why it refused it."""
    found = UNKNOWN_HELPER.findall(log.text) if log else []
    return found[-1] if found else None
