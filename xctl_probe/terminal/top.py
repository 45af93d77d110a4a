"""``top``: the stream's lines counted (top_counts.py) instead of written,
and shown full-screen (top_screen.py), refreshed every second.

rich's Live draws it on the terminal's alternate screen with the cursor
hidden, from a thread of its own; the keys are read in cbreak mode
(keys.py). ``q`` stops the stream as SIGTERM would (StopSignals.request),
``s`` sorts by the next of segs, drops and rate. However the view ends (a
key, a signal, --duration, an error) the terminal is given back as it was:
the alternate screen left, the cursor shown, the modes restored.
"""

import contextlib
import time
from typing import List, Optional

from rich.console import Console, RenderableType
from rich.live import Live
from rich.text import Text

from ..meaning.event import TransportDrop
from ..output.stop import StopSignals
from .keys import Keys
from .styles import Palette
from .top_counts import SORTS, TopCounts
from .top_screen import screen


class CountingSink:
    """The stream's sink (output/sink.py) for top: lines counted, none written."""

    def __init__(self, counts: TopCounts):
        self._counts = counts
        self._lost = 0
        self.lines = 0
        self.closed = False

    @property
    def lost(self) -> int:
        return self._lost

    def put(self, lines: List[TransportDrop], lost_in_kernel: int) -> None:
        self._lost = lost_in_kernel
        self._counts.add(lines)
        self.lines += len(lines)

    def wait_written(self, timeout_s: float) -> bool:
        return True

    def close(self, timeout_s: float) -> int:
        return 0


class TopView:
    def __init__(self, stop: StopSignals, span_s: int, sort: str,
                 console: Optional[Console] = None, keys_fd: int = 0):
        self._stop = stop
        self._span_s = span_s
        self._sort = sort
        self._console = console if console is not None else Console()
        self._glyphs = Palette(self._console).glyphs
        self._keys_fd = keys_fd
        self.counts = TopCounts(span_s)
        self.sink = CountingSink(self.counts)
        self._live: Optional[Live] = None
        self._keys: Optional[Keys] = None
        self._failure: Optional[BaseException] = None
        self._stack = contextlib.ExitStack()

    def __enter__(self) -> "TopView":
        with contextlib.ExitStack() as stack:
            self._live = stack.enter_context(Live(
                get_renderable=self._render, console=self._console, screen=True,
                auto_refresh=True, refresh_per_second=1, redirect_stdout=False,
                redirect_stderr=False))
            self._keys = stack.enter_context(Keys(self._keys_fd, self._key))
            self._live.refresh()
            self._stack = stack.pop_all()
        return self

    def __exit__(self, *exc) -> None:
        self._stack.close()
        if self._failure is not None and exc[0] is None:
            raise self._failure

    def _key(self, key: str) -> None:
        if key == "q":
            self._stop.request()
        elif key == "s":
            self._sort = SORTS[(SORTS.index(self._sort) + 1) % len(SORTS)]
            self._live.refresh()

    def _render(self) -> RenderableType:
        """On Live's thread. A failure stops the stream and is raised once
        the terminal is given back, never printed over the screen."""
        if self._failure is not None:
            return Text("")
        try:
            view = self.counts.view(time.time_ns() // 1_000_000, self._sort)
            return screen(view, tuple(self._console.size), self._sort, self._span_s,
                          self.sink.lost, self._keys is not None and self._keys.reading,
                          self._glyphs)
        except Exception as exc:
            self._failure = exc
            self._stop.request()
            return Text("")
