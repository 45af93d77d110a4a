"""The table's columns, and which of them a terminal's width leaves room for.

An SRE reads a row left to right: when, who, which job, which flow, in what
state, why, how much, how bad, how stuck. When the terminal is narrower than
every column at its width, columns shrink to their least width, the least
important first, then the least important go, until the rest fit; room left
then goes back to the most important. The flow goes last, shrunk to what is
left. A row is never wider than the terminal: it would wrap, and a wrapped
table cannot be read.
"""

from dataclasses import dataclass
from typing import List, Optional, Tuple

GAP = " "


@dataclass(frozen=True)
class Column:
    key: str
    header: str
    width: int
    least: int
    right: bool = False


# In the order they show.
COLUMNS = (
    Column("time", "TIME", 12, 12),
    Column("owner", "PID/COMM", 19, 11),
    Column("job", "JOB", 12, 6),
    # Two IPv4 endpoints, 255.255.255.255:65535 each, at most; at least
    # 10.0.0.5:49528 → 10.0.0.9:9000; IPv6 ones are shortened in their middle.
    Column("flow", "LOCAL → REMOTE", 45, 31),
    Column("state", "STATE", 11, 5),
    Column("kind", "KIND", 14, 6),
    Column("segs", "SEGS", 6, 4, right=True),
    # Records a row merges: a terminal that fell behind, or a flood the kernel counted.
    Column("recs", "RECS", 4, 4, right=True),
    Column("rate", "RATE", 9, 6, right=True),
    Column("timers", "RTO×BACKOFF STALLED", 19, 9),
)
BY_KEY = {column.key: column for column in COLUMNS}
# Most important first.
IMPORTANCE = ("flow", "time", "segs", "kind", "owner", "rate", "timers", "job", "state", "recs")

Layout = List[Tuple[Column, int]]


def _total(widths) -> int:
    return sum(widths.values()) + len(GAP) * (len(widths) - 1)


def fit(width: Optional[int]) -> Layout:
    """Each column that shows, with its width in cells, for a terminal
    ``width`` cells wide (None: no terminal, every column at its width)."""
    widths = {column.key: column.width for column in COLUMNS}
    if width is not None:
        for key in reversed(IMPORTANCE):
            excess = _total(widths) - width
            if excess <= 0:
                break
            widths[key] -= min(excess, widths[key] - BY_KEY[key].least)
        for key in reversed(IMPORTANCE[1:]):
            if _total(widths) <= width:
                break
            del widths[key]
        for key in IMPORTANCE:
            if key in widths:
                widths[key] += max(0, min(width - _total(widths),
                                          BY_KEY[key].width - widths[key]))
        widths["flow"] = max(1, widths["flow"] - max(0, _total(widths) - width))
    return [(column, widths[column.key]) for column in COLUMNS if column.key in widths]
