"""``top``'s screen, drawn with rich from a view of the counts (top_counts.py):
a line of totals, the flows, processes and jobs that retransmitted and
dropped the most over the span, each most first by the sort chosen, and a
footer with the keys. The flows get half the rows the terminal has, the
processes and jobs a quarter each (the flows take what those leave). Every
text from outside (comm, job, reason) goes in as plain text, never as rich
markup, and made printable first."""

from typing import List, Optional, Tuple

from rich.console import Group as Stack
from rich.console import RenderableType
from rich.table import Table
from rich.text import Text

from . import cells
from .cells import Glyphs
from .top_counts import OTHER_FLOWS, SORTS, Flow, FlowKey, View

# A rate (or a flow's drops over the window) from which xctl's network_stall fires.
HOT_VALUE = 10
# Lines that are not rows: the totals, the footer, and each table's title and header.
FRAME_LINES = 2 + 3 * 2
# Flow column: at least an IPv4 flow with an ephemeral port, at most two IPv6 endpoints' worth.
FLOW_WIDTH = (31, 61)
# The flows table's columns, most important first, each with the cells it
# takes (its gap included): on a narrow terminal the last ones go.
FLOW_COLUMNS = (("flow", FLOW_WIDTH[0] + 1), ("segs", 8), ("drops", 8), ("rate", 7),
                ("owner", 18), ("last", 15), ("job", 11))
# In the order they show.
FLOW_ORDER = ("flow", "owner", "job", "segs", "drops", "rate", "last")
NUMBERS = [("SEGS", {"justify": "right"}), ("DROPS", {"justify": "right"}),
           ("RATE", {"justify": "right"})]


def _count(n: int) -> Text:
    return Text(f"{n:,}", style="bold" if n else "dim")


def _rate(rate: Optional[float]) -> Text:
    if rate is None:
        return Text("-", style="dim")
    return Text(f"{rate:.1f}%", style="bold red" if rate >= HOT_VALUE else "")


def _owner(pid: Optional[int], comm: Optional[str]) -> Text:
    if pid is None and comm is None:
        return Text("(no owner named)", style="dim")
    comm = cells.printable(comm) if comm is not None else ""
    return Text(f"{pid}/{comm}" if pid is not None else comm, style="cyan")


def _job(job: Optional[str]) -> Text:
    if job is None:
        return Text("(no job)", style="dim")
    return Text(cells.printable(job), style="magenta")


def _last(flow: Flow) -> Text:
    """What the flow's newest line was: its kind, or the reason of its drop."""
    line = flow.line
    if line is None:
        return Text("")
    if line.kind == "drop":
        return Text(cells.printable(line.reason or "drop"), style="magenta")
    return Text(line.kind or "-")


def _flow(key: FlowKey, flow: Flow, width: int, glyphs: Glyphs) -> Text:
    line = flow.line
    if key == OTHER_FLOWS or line is None:
        return Text("(other flows)", style="dim")
    return Text(cells.flow(cells.endpoint(line.saddr, line.sport, line.family),
                           cells.endpoint(line.daddr, line.dport, line.family), width, glyphs))


def _flow_columns(width: int) -> List[str]:
    """The flows table's columns a terminal ``width`` cells wide has room for, in their order."""
    shown, used = set(), 0
    for key, cells_taken in FLOW_COLUMNS:
        if shown and used + cells_taken > width:
            break
        shown.add(key)
        used += cells_taken
    return [key for key in FLOW_ORDER if key in shown]


def _table(title: str, columns: List[Tuple[str, dict]], sort: str, glyphs: Glyphs) -> Table:
    table = Table(title=title, title_justify="left", title_style="bold", box=None,
                  pad_edge=False, padding=(0, 1, 0, 0), header_style="bold reverse")
    for header, options in columns:
        key = header.lower()
        marked = f"{header}{glyphs.down}" if key == sort else header
        table.add_column(marked, no_wrap=True, overflow="ellipsis", **options)
    return table


def screen(view: View, size: Tuple[int, int], sort: str, span_s: int, lost: int,
           keys: bool, glyphs: Glyphs = cells.UNICODE) -> RenderableType:
    """The whole screen for a terminal of ``size`` (width, height); ``keys``:
    whether keys are read (stdin is a terminal)."""
    width, height = size
    rows = max(3, height - FRAME_LINES)
    jobs_rows = min(len(view.jobs), max(1, rows // 4))
    processes_rows = min(len(view.processes), max(1, rows // 4))
    flows_rows = max(1, rows - jobs_rows - processes_rows)
    shown = _flow_columns(width)
    others = sum(cells for key, cells in FLOW_COLUMNS if key in shown and key != "flow")
    flow_width = min(width, max(FLOW_WIDTH[0], min(FLOW_WIDTH[1], width - others - 1)))

    totals = Text.assemble(
        ("xctl-probe-ebpf top", "bold"),
        f"  last {span_s} s: ",
        (f"{view.segs:,}", "bold"), f" segments retransmitted ({view.segs / span_s:,.0f}/s), ",
        (f"{view.drops:,}", "bold"), " packets dropped",
        (f"; {lost:,} records lost" if lost else "", "bold yellow"),
        f"; sorted by {sort}")
    totals.truncate(width, overflow="ellipsis")

    headers = {"flow": (f"LOCAL{glyphs.arrow}REMOTE", {"max_width": flow_width}),
               "owner": ("PID/COMM", {"max_width": 17}), "job": ("JOB", {"max_width": 10}),
               "segs": NUMBERS[0], "drops": NUMBERS[1], "rate": NUMBERS[2],
               "last": ("LAST", {"max_width": 14})}
    flows = _table("Flows", [headers[key] for key in shown], sort, glyphs)
    for key, flow in view.flows[:flows_rows]:
        row = {"owner": lambda: _owner(flow.pid, flow.comm), "job": lambda: _job(flow.job),
               "segs": lambda: _count(flow.segs), "drops": lambda: _count(flow.drops),
               "rate": lambda: _rate(flow.rate), "last": lambda: _last(flow),
               "flow": lambda: _flow(key, flow, flow_width, glyphs)}
        flows.add_row(*(row[column]() for column in shown))

    processes = _table("Processes", [("PID/COMM", {"max_width": 30}),
                                     ("FLOWS", {"justify": "right"}), *NUMBERS], sort, glyphs)
    for group in view.processes[:processes_rows]:
        processes.add_row(_owner(*group.key), _count(group.flows), _count(group.segs),
                          _count(group.drops), _rate(group.rate))

    jobs = _table("Jobs", [("JOB", {"max_width": 40}), ("PROCESSES", {"justify": "right"}),
                           ("FLOWS", {"justify": "right"}), *NUMBERS],
                  sort, glyphs)
    for group in view.jobs[:jobs_rows]:
        jobs.add_row(_job(group.key[0]), _count(len(group.processes)), _count(group.flows),
                     _count(group.segs), _count(group.drops), _rate(group.rate))

    following = SORTS[(SORTS.index(sort) + 1) % len(SORTS)]
    footer = (Text.assemble(("q", "bold reverse"), " quit  ", ("s", "bold reverse"),
                            f" sort by {following}  ", ("Ctrl-C", "bold reverse"), " quit")
              if keys else Text.assemble(("Ctrl-C", "bold reverse"), " quit"))
    footer.truncate(width, overflow="ellipsis")
    # The footer on the last line.
    blank = rows - len(flows.rows) - len(processes.rows) - len(jobs.rows)
    return Stack(totals, flows, processes, jobs, *[Text("")] * blank, footer)
