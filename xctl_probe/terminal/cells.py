"""Text for a terminal's cells: what a process may name itself made harmless,
addresses shortened in the middle, spans of time and clock times made short.

A comm, a job id or a reason comes from other processes and the kernel: a
control character or a bidirectional override in one would move the
terminal's cursor or reorder the row, so every character that is not
printable shows as ``?``. Widths are terminal cells (rich.cells), not
characters: a comm may be in any script.
"""

import time
from typing import Optional, Tuple

from rich.cells import cell_len, set_cell_size


class Glyphs:
    """The few characters beyond ASCII a row uses, or ASCII where the
    terminal's encoding cannot show them."""

    def __init__(self, unicode: bool):
        self.arrow = " → " if unicode else " -> "
        self.ellipsis = "…" if unicode else "~"
        self.times = "×" if unicode else "x"
        self.down = "▼" if unicode else "v"


UNICODE = Glyphs(True)


def printable(text: str) -> str:
    """``text`` with every character a terminal would act on replaced by ``?``."""
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else "?" for c in text)


def fit_end(text: str, width: int, glyphs: Glyphs = UNICODE) -> str:
    """``text`` in at most ``width`` cells, cut at its end."""
    if cell_len(text) <= width:
        return text
    if width <= 1:
        return set_cell_size(text, width)
    return set_cell_size(text, width - cell_len(glyphs.ellipsis)) + glyphs.ellipsis


def fit_middle(text: str, width: int, glyphs: Glyphs = UNICODE) -> str:
    """``text`` in at most ``width`` cells, its middle left out: both ends of
    an address, a pod UID or a path are what tells them apart."""
    if cell_len(text) <= width:
        return text
    keep = width - cell_len(glyphs.ellipsis)
    if keep < 2:
        return set_cell_size(text, width)
    head = (keep + 1) // 2
    tail = set_cell_size(text[::-1], keep - head)[::-1]
    return set_cell_size(text, head) + glyphs.ellipsis + tail


def endpoint(addr: str, port: int, family: str) -> str:
    """addr:port, an IPv6 address in brackets."""
    return f"[{addr}]:{port}" if family == "ipv6" else f"{addr}:{port}"


def _fit_endpoint(text: str, width: int, glyphs: Glyphs) -> str:
    """An endpoint in ``width`` cells: the address shortened in its middle, the port kept."""
    if len(text) <= width:
        return text
    addr, sep, port = text.rpartition(":")
    room = width - len(port) - 1
    if room < 4:
        return fit_middle(text, width, glyphs)
    return fit_middle(addr, room, glyphs) + sep + port


def flow(local: str, remote: str, width: int, glyphs: Glyphs = UNICODE) -> str:
    """``local → remote`` in at most ``width`` cells; when too long, each side
    keeps its port and loses the middle of its address, the shorter side
    keeping all it can."""
    text = local + glyphs.arrow + remote
    if len(text) <= width:
        return text
    room = width - len(glyphs.arrow)
    if room < 2:
        return fit_end(text, width, glyphs)
    local_room = min(len(local), max(room // 2, room - len(remote)))
    return (_fit_endpoint(local, local_room, glyphs) + glyphs.arrow
            + _fit_endpoint(remote, room - local_room, glyphs))


def span_ms(ms: int) -> str:
    """A span of milliseconds, short: 204ms, 2.1s, 95s, 12m."""
    if ms < 1000:
        return f"{ms}ms"
    if ms < 10_000:
        return f"{ms / 1000:.1f}s"
    if ms < 600_000:
        return f"{ms // 1000}s"
    return f"{ms // 60_000}m"


def timers(rto_ms: Optional[int], backoff: Optional[int], stalled_ms: Optional[int],
           glyphs: Glyphs = UNICODE) -> str:
    """RTO×BACKOFF STALLED: ``400ms×3 2.1s``; the backoff only once there is
    one, each part only when known."""
    text = span_ms(rto_ms) if rto_ms is not None else ""
    if backoff:
        text += f"{glyphs.times}{backoff}"
    if stalled_ms is not None:
        text = f"{text or '-'} {span_ms(stalled_ms)}"
    return text


class Clock:
    """Epoch milliseconds as local HH:MM:SS.mmm, the second's text kept from row to row."""

    def __init__(self):
        self._second: Tuple[int, str] = (-1, "")

    def __call__(self, ts_ms: int) -> str:
        second, ms = divmod(ts_ms, 1000)
        if second != self._second[0]:
            self._second = (second, time.strftime("%H:%M:%S", time.localtime(second)))
        return f"{self._second[1]}.{ms:03d}"
