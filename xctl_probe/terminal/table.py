"""The stream as a table's rows: the writer's form (output/writer.py) for a
person at a terminal, ``--format table``.

Rows are made on the writer thread, never on the line thread: the writer
hands its form each batch as it comes (``early``: nothing done), and the
form makes the rows just before they are written (``late``). A terminal, or
a formatter, that cannot keep up with a storm makes the writer fall behind,
and lines merge per flow as they would for xctl: a row then carries the sum
of its flow's segments and, in RECS, the records it merges.

A header comes first, again every screenful (so one is always in sight) and
whenever the width changes (the columns change with it). Once records are
lost, a row says how many, when the count has grown, at most once a second.
"""

import os
import time
from typing import Callable, List, Optional, Tuple

from rich.cells import cell_len
from rich.console import Console

from ..meaning.event import TransportDrop
from ..output.writer import LineWriter
from . import cells
from .columns import GAP, Layout, fit
from .styles import Palette

# Between two rows saying how many records were lost.
LOST_EVERY_S = 1.0
# xctl's network_stall fires from a value of 10: a rate of 10 %, or 10 drops over the window.
HOT_VALUE = 10

Size = Callable[[], Tuple[Optional[int], Optional[int]]]


def terminal_size(fd: int) -> Size:
    """(width, height) of the terminal on ``fd`` as it is now; without one,
    COLUMNS if set, else no bound (every column at its width, one header)."""
    def size() -> Tuple[Optional[int], Optional[int]]:
        try:
            return tuple(os.get_terminal_size(fd))
        except OSError:
            columns = os.environ.get("COLUMNS", "")
            return (int(columns) if columns.isdigit() and int(columns) else None), None
    return size


class TableRows:
    def __init__(self, palette: Palette, size: Size, window_s: float,
                 encoding: str = "utf-8"):
        """``size()`` gives the terminal's (width, height) as it is now;
        ``window_s`` is --window, the span a drop's value counts over."""
        self._palette = palette
        self._glyphs = palette.glyphs
        self._size = size
        self._window = f"{window_s:g}s"
        self._encoding = encoding
        self._clock = cells.Clock()
        self._layout: Layout = []
        self._width: Optional[int] = -1
        self._since_header: Optional[int] = None
        self._lost_shown = 0
        self._lost_at = 0.0

    def early(self, lines: List[TransportDrop], lost: int) -> Tuple[List[TransportDrop], int]:
        return lines, lost

    merged = early

    def late(self, prepared: Tuple[List[TransportDrop], int]) -> bytes:
        lines, lost = prepared
        width, height = self._size()
        if width != self._width:
            self._width = width
            self._layout = fit(width)
            self._since_header = None
        rows = []
        if lost > self._lost_shown and time.monotonic() - self._lost_at >= LOST_EVERY_S:
            rows.append(self.lost_row(lost))
            self._lost_shown, self._lost_at = lost, time.monotonic()
        for line in lines:
            if self._since_header is None or (height and self._since_header >= height - 1):
                rows.append(self.header())
                self._since_header = 0
            rows.append(self.row(line))
            self._since_header += 1
        rows.append("")
        return "\n".join(rows).encode(self._encoding, "replace")

    def header(self) -> str:
        glyphs = self._glyphs
        texts = []
        for column, width in self._layout:
            title = column.header.replace(" → ", glyphs.arrow).replace("×", glyphs.times)
            texts.append(_aligned(cells.fit_end(title, width, glyphs), width, column.right))
        return self._palette.paint("header", GAP.join(texts))

    def lost_row(self, lost: int) -> str:
        text = (f"{lost} records lost so far: a full ring (raise --ring-kib), runs the kernel "
                f"skipped, or rows a terminal far behind could not keep")
        return self._palette.paint("lost", cells.fit_end(text, self._width or len(text),
                                                         self._glyphs))

    def row(self, line: TransportDrop) -> str:
        paint = self._palette.paint
        glyphs = self._glyphs
        # Without a terminal nothing is cut: a longer cell shifts the rest of its row.
        fitted = self._width is not None
        texts = []
        last = self._layout[-1][0]
        for column, width in self._layout:
            text, style = self._cell(column.key, line, width if fitted else None)
            if fitted and column.key == "job":
                text = cells.fit_middle(text, width, glyphs)
            elif fitted and column.key != "flow":
                text = cells.fit_end(text, width, glyphs)
            if column is not last or column.right:  # no spaces at a row's end
                text = _aligned(text, width, column.right)
            texts.append(paint(style, text))
        return GAP.join(texts)

    def _cell(self, key: str, line: TransportDrop, width: Optional[int]) -> Tuple[str, str]:
        """A cell's text (not yet fitted to ``width``, but for the flow;
        None: not fitted) and its style."""
        drop = line.kind == "drop"
        if key == "time":
            return self._clock(line.ts), "time"
        if key == "owner":
            comm = cells.printable(line.comm) if line.comm is not None else ""
            return (f"{line.pid}/{comm}" if line.pid else comm or "-"), "owner"
        if key == "job":
            return (cells.printable(line.job_id) if line.job_id else "-"), "job"
        if key == "flow":
            local = cells.endpoint(line.saddr, line.sport, line.family)
            remote = cells.endpoint(line.daddr, line.dport, line.family)
            if width is None:
                return local + self._glyphs.arrow + remote, ""
            return cells.flow(local, remote, width, self._glyphs), ""
        if key == "state":
            return line.state or "-", ""
        if key == "kind":
            if drop:
                text = cells.printable(line.reason or "drop")
                return (f"{text} (no loss)", "noloss") if line.loss is False else (text, "drop")
            text = line.kind or "-"
            return (f"{text} {line.err_name}" if line.err_name else text), line.kind or ""
        if key == "segs":
            return str(line.segs), "segs"
        if key == "recs":
            return (str(line.count) if line.count else ""), ""
        if key == "rate":
            hot = float(line.value) >= HOT_VALUE
            return (f"{line.value}/{self._window}" if drop else f"{line.value}%"), (
                "hot" if hot else "")
        # timers
        return (cells.timers(line.rto_ms, line.backoff, line.stalled_ms, self._glyphs),
                "hot" if (line.backoff or 0) >= 3 else "")


def table_writer(fd: int, window_s: float, interval_s: Optional[float] = None) -> LineWriter:
    """The writer of the table's rows onto ``fd`` (stdout, what rich's console looks at);
    ``interval_s``: a row per flow that often (--interval)."""
    console = Console()
    rows = TableRows(Palette(console), terminal_size(fd), window_s, console.encoding)
    return LineWriter(fd, form=rows, interval_s=interval_s)


def _aligned(text: str, width: int, right: bool) -> str:
    pad = width - cell_len(text)
    if pad <= 0:
        return text
    return " " * pad + text if right else text + " " * pad
