"""The stream's life once the CLI has its options: the drops to report, the
object loaded and attached, the "attached" line on stderr, then the stream
until a stop. The CLI imports it only then, so --help, --version and usage
errors never load the binding."""

import contextlib
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, List, Optional, Tuple

import click

from ..kernel.drop_reasons import reported_reasons
from ..kernel.flow_filter import flow_filter
from ..kernel.loader import LoadedProbe
from ..kernel.preconditions import KERNEL_BTF
from ..meaning.drop_classes import policy
from ..meaning.filters import Filters
from .filter_options import reason_codes

Say = Callable[[str], None]


@dataclass(frozen=True)
class StreamSettings:
    """What the command line asked of the stream, checked."""

    object_path: Path
    ring_kib: int
    window: float
    job_env: List[str]
    duration: Optional[float] = None
    # "loss" or "all"; None: no drops reported
    drops: Optional[str] = "loss"
    # "json": xctl's JSONL; "table": rows for a person; "top": the full-screen view
    format: str = "json"
    # top's: the seconds it counts over, and what it sorts by first
    span: int = 10
    sort: str = "segs"
    filters: Filters = field(default_factory=Filters)
    # --interval: at most one line per flow that often (None: a line per record)
    interval: Optional[float] = None
    # --metrics: (host, port) to serve them on ("": every address); None: none
    metrics: Optional[Tuple[str, int]] = None


def _ms_since_process_start() -> float:
    """From exec to now, from the kernel's own start time of this process (10 ms ticks)."""
    with open("/proc/self/stat", encoding="ascii") as stat:
        after_comm = stat.read().rsplit(")", 1)[1].split()
    start_s = int(after_comm[19]) / os.sysconf("SC_CLK_TCK")
    return (time.clock_gettime(time.CLOCK_BOOTTIME) - start_s) * 1000


def _drop_reasons(drops: Optional[str], filters: Filters):
    """This kernel's drop reasons and what the drop program is to report of
    them (``drops``: "loss" or "all"; ``filters``' reasons only, if any); (None,
    None) when drops are not to be reported, and why not if the kernel is the
    reason."""
    if drops is None or not KERNEL_BTF.is_file():
        return None, None, None
    reasons, said = reported_reasons(KERNEL_BTF)
    if reasons is None:
        if filters.reasons:
            raise click.UsageError(f"--reason: {said}")
        return None, None, f"drops: not reported: {said}; reporting retransmissions only"
    report_all = drops == "all"
    asked = reason_codes(filters, reasons, report_all) if filters.reasons else None
    return reasons, policy(reasons, report_all, asked), None


def format_for(asked: Optional[str], out_fd: int = 1) -> str:
    """The format of the lines: the one asked for, else a table for a person
    at a terminal and JSONL for anything else (xctl reads a pipe)."""
    return asked or ("table" if os.isatty(out_fd) else "json")


def output_for(stop, settings: StreamSettings, out_fd: int = 1):
    """The sink the lines go to, and what holds the terminal while the
    stream runs (top's screen)."""
    if settings.format == "top":
        from ..terminal.top import TopView

        view = TopView(stop, settings.span, settings.sort)
        return view.sink, view
    if settings.format == "table":
        from ..terminal.table import table_writer

        return (table_writer(out_fd, settings.window, settings.interval),
                contextlib.nullcontext())
    from ..output.writer import LineWriter

    return LineWriter(out_fd, interval_s=settings.interval), contextlib.nullcontext()


def run(stop, settings: StreamSettings, say: Say):
    """Loads, attaches and streams until ``stop`` (or the duration); the totals."""
    filters = settings.filters
    reasons, drop_policy, unreported = _drop_reasons(settings.drops, filters)
    with LoadedProbe(settings.object_path, ring_bytes=settings.ring_kib * 1024,
                     drops=drop_policy,
                     filters=flow_filter(filters.ports, filters.netns, filters.families,
                                         filters.drops_only)
                     ) as probe:
        # Once loaded: a probe that cannot start says one line, its error.
        if unreported:
            say(unreported)
        # Only now: the load's peak of memory comes before these are in it.
        from ..context.owners import Owners
        from ..output.stream import Stream

        sink, screen = output_for(stop, settings)
        metrics = _metrics(probe, settings)
        stream = Stream(probe, settings.window, Owners(probe.socket_holders, settings.job_env),
                        stop, reasons=reasons, sink=sink, keep=filters.keep(),
                        taps=(metrics.metrics.tap,) if metrics else ())
        served = _served(metrics, settings, lambda: stream.lost, say)
        hz = (f"HZ {probe.hz} (from the {probe.hz_source})" if probe.hz
              else "HZ unknown: rto_ms and stalled_ms left out")
        say(
            f"attached to {len(probe.attached)} tracepoints in "
            f"{_ms_since_process_start():.0f} ms since exec; {probe.layout}; {hz}; "
            f"{probe.sockets}{served}"
        )
        with screen, metrics or contextlib.nullcontext():
            totals = stream.run(settings.duration)
        totals.metrics_unserved = metrics is not None and not metrics.served
        return totals


def _metrics(probe, settings: StreamSettings):
    """--metrics' registry and tap (None without the option)."""
    if settings.metrics is None:
        return None
    from .. import __version__
    from ..output.metrics_server import ProbeMetrics

    return ProbeMetrics(probe, settings.ring_kib * 1024, {
        "version": __version__, "kernel": os.uname().release, "layout": probe.layout,
        "sockets": probe.sockets})


def _served(metrics, settings: StreamSettings, lost: Callable[[], int], say: Say) -> str:
    """Serves --metrics; what the start-up line adds of it. One line said when
    they cannot be served: the stream goes on without them."""
    if metrics is None:
        return ""
    from ..output.metrics_server import MetricsUnserved

    try:
        return f"; {metrics.serve(*settings.metrics, lost)}"
    except MetricsUnserved as exc:
        say(str(exc))
        return ""
