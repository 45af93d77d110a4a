"""libbpf's own words about a failure, for the message that reports it.

The binding captures libbpf's log instead of letting it reach stderr (a pipe
nobody reads under xctl), keeping the first warning since the last reset:
the root cause, where an errno alone would say only "invalid argument".
"""

from .binding import ffi, lib


def reset() -> None:
    """Forgets what libbpf said before the call about to be made."""
    lib.xp_reset_libbpf_log()


def says() -> str:
    """libbpf's first warning since the last reset, as " (libbpf: ...)", or ""."""
    message = ffi.string(lib.xp_first_libbpf_message()).decode(errors="replace")
    message = message.removeprefix("libbpf: ")
    return f" (libbpf: {message})" if message else ""
