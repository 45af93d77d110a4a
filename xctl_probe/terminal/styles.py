"""Colour for the table, through rich: it tells which colours the terminal
takes (none, 16, 256 or true colour, from TERM and COLORTERM) and writes
their codes. Rendering each row through rich's own text would cost tens of
microseconds a row, in a storm of thousands a second; so rich renders each
style once, and rows are painted with the codes it gave. No terminal, or
NO_COLOR set (https://no-color.org): no codes at all, not even bold.
"""

from typing import Dict, Tuple

from rich.console import Console
from rich.style import Style

from .cells import Glyphs

STYLES = {
    "header": "bold reverse",
    "time": "dim",
    "owner": "cyan",
    "job": "magenta",
    "segs": "bold",
    # Why: the timer (a flow that stalled) in red, recovery in yellow, the
    # loss probe in cyan, handshakes in blue, drops in magenta.
    "rto": "bold red",
    "noncongestion": "red",
    "fast": "yellow",
    "tlp": "cyan",
    "syn": "blue",
    "synack": "blue",
    "drop": "magenta",
    "noloss": "dim",
    # What xctl's network_stall fires on (a rate or drops of 10 or more), a
    # flow in backoff three times over.
    "hot": "bold red",
    "lost": "bold yellow",
}


class Palette:
    def __init__(self, console: Console):
        self.on = bool(console.is_terminal and not console.no_color and console.color_system)
        self._codes: Dict[str, Tuple[str, str]] = {}
        if self.on:
            for name, spec in STYLES.items():
                before, after = Style.parse(spec).render(
                    "\0", color_system=console.color_system).split("\0")
                self._codes[name] = (before, after)
        self.glyphs = Glyphs(console.encoding.lower().startswith("utf"))

    def paint(self, style: str, text: str) -> str:
        """``text`` in ``style`` (a name of STYLES), or as it is without colour."""
        if not self.on or not style:
            return text
        before, after = self._codes[style]
        return f"{before}{text}{after}"
