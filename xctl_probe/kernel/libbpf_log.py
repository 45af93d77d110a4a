"""libbpf's own words about a failure, for the message that reports it.

The binding captures libbpf's log instead of letting it reach stderr (a pipe
nobody reads under xctl), keeping every warning since the last reset: the
first is the root cause, where an errno alone would say only "invalid
argument".
"""

from .binding import ffi, lib

PREFIX = "libbpf: "


def reset() -> None:
    """Forgets what libbpf said before the call about to be made."""
    lib.xp_reset_libbpf_log()


def _said() -> str:
    return ffi.string(lib.xp_libbpf_log()).decode(errors="replace")


def says() -> str:
    """libbpf's first warning since the last reset, as " (libbpf: ...)", or ""."""
    message = _said().split("\n", 1)[0].strip().removeprefix(PREFIX)
    return f" (libbpf: {message})" if message else ""

