"""The command line: options, the probe's life, and every failure as one line.

xctl starts a probe as ``python3 PATH`` with no arguments, so every option
has a default that is right for it. stderr is a pipe nobody reads: the probe
writes one line when it is attached and one when it stops, and a failure is
one line with a distinct exit code, never a traceback.
"""

import enum
import os
import sys
from pathlib import Path
from typing import List, Optional

import click
import typer

from .. import __version__
from ..errors import (EXIT_BAD_INSTALL, EXIT_INTERNAL, EXIT_KERNEL_UNSUPPORTED,
                      EXIT_METRICS_UNSERVED, EXIT_NO_BTF, EXIT_NO_PRIVILEGE, EXIT_OK, EXIT_USAGE,
                      ProbeError)
from ..kernel.objects import PROBE_OBJECT
from .filter_options import (CGROUP_OPTION, COMM_OPTION, FAMILY_OPTION, JOB_OPTION, KIND_OPTION,
                             NETNS_OPTION, PID_OPTION, PORT_OPTION, REASON_OPTION, Family, Kind,
                             filters_from)
from .listen_address import listen_address

PROG = "xctl-probe-ebpf"

EPILOG = f"""Output on a pipe (and with --format json; on a terminal, a table: see
--format): one JSON object per line on stdout, the event format of xctl
(ark): ts, event_type "transport.drop", entity_id
"network-<saddr>-<daddr>-<sport>-<dport>", job_id and pid of the socket's
owner when known, value (the flow's retransmission rate in percent over
--window), then comm, family, saddr, daddr, sport, dport, segs, err,
err_name, state, kind (rto, noncongestion, fast, tlp, syn, synack, or drop
for a TCP packet the kernel dropped, with reason and reason_code: the running
kernel's name and number, and loss false, value 0, for one that is no loss),
rtt_us, cgroup_id, netns, lost and count (records merged behind a slow
reader, or per --interval), each when known. lost (cumulative, also in the last stderr line)
counts records, not segments: those that found the ring buffer full and the
runs of the probe's programs the kernel skipped (recursion_misses), whose
segments the socket's next line carries, and those dropped behind a stalled
reader.

Under xctl: ark run --probe "$(command -v {PROG})"; where xctl forwards to a
hub, --interval, given through a wrapper script (see the README).

Exit codes: {EXIT_OK} stopped by SIGTERM/SIGINT or stdout closed;
{EXIT_USAGE} bad option or value; {EXIT_NO_PRIVILEGE} not privileged (needs root, or CAP_BPF
and CAP_PERFMON); {EXIT_NO_BTF} kernel without BTF; {EXIT_BAD_INSTALL} BPF object or binding
missing (reinstall); {EXIT_KERNEL_UNSUPPORTED} kernel lacks a hook or rejected the object (the
error names the file the verifier's log is kept in);
{EXIT_METRICS_UNSERVED} stopped as 0, but --metrics was not served (one stderr line said why);
{EXIT_INTERNAL} internal error (please report)."""

app = typer.Typer(
    add_completion=False,
    invoke_without_command=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 80},
)


def _say(message: str) -> None:
    sys.stderr.write(f"{PROG}: {message}\n")
    sys.stderr.flush()


def _version(value: bool) -> None:
    if value:
        typer.echo(f"{PROG} {__version__}")
        raise typer.Exit()


def _finite(value: float) -> float:
    # FloatRange lets nan through: every comparison with it is false.
    if value != value:
        raise typer.BadParameter("nan is not a number of seconds")
    return value


def _ring_kib(value: int) -> int:
    page_kib = os.sysconf("SC_PAGE_SIZE") // 1024
    if value < page_kib or value & (value - 1):
        raise typer.BadParameter(
            f"{value} is not a power of two of at least {page_kib} (one page)")
    return value


OBJECT_OPTION = typer.Option(
    PROBE_OBJECT,
    "--object",
    metavar="PATH",
    show_default=False,
    help="CO-RE BPF object to load (default: the one installed with the package).",
)
WINDOW_OPTION = typer.Option(
    10.0,
    "--window",
    min=0.1,
    max=3600.0,
    callback=_finite,
    metavar="SECONDS",
    help="Span of the per-flow retransmission rate written as value.",
)
RING_KIB_OPTION = typer.Option(
    1024,
    "--ring-kib",
    max=1 << 20,
    callback=_ring_kib,
    metavar="KIB",
    help="Size in KiB of the ring buffer the kernel writes records into, a power of "
    "two. Records that find it full are counted in lost: raise it if lines report any.",
)
JOB_ENV_OPTION = typer.Option(
    ["SLURM_JOB_ID"],
    "--job-env",
    metavar="NAME",
    help="job_id comes from the socket's cgroup path first (Slurm's job_<id>, a "
    "Kubernetes pod UID), else from the owner's cgroup path; where they name none, "
    "from this variable of the owner's environment. Repeat for several, the first set "
    "wins.",
)
DURATION_OPTION = typer.Option(
    None,
    "--duration",
    min=0.0,
    callback=lambda value: value if value is None else _finite(value),
    metavar="SECONDS",
    show_default=False,
    help="Stop after this long, exactly as SIGTERM would (exit 0, last records "
    "delivered). Default: stream until stopped.",
)
NO_DROPS_OPTION = typer.Option(
    False, "--no-drops",
    help="Report retransmissions only, not the TCP packets the kernel drops.",
)


class Drops(str, enum.Enum):
    loss = "loss"
    all = "all"


DROPS_OPTION = typer.Option(
    None, "--drops",
    show_default=False,
    help="Which dropped TCP packets to report. loss (the default): those the network lost or "
    "this host refused (netfilter, qdisc, full buffers, zero window, checksums, ...); frees "
    "at teardown, duplicates of data already received, copies and segments after the "
    "peer's FIN are skipped in the kernel. all: every one; a line of one that is no loss "
    "carries loss false and value 0.",
)


class Format(str, enum.Enum):
    table = "table"
    json = "json"


FORMAT_OPTION = typer.Option(
    None, "--format",
    show_default=False,
    help="table: a row per line for a person (time, pid/comm, job, local -> remote, state, "
    "kind or drop reason, segs, rate, rto/backoff/stalled), fitted to the terminal's width, "
    "a header every screenful, colour unless NO_COLOR is set; rows merge per flow (RECS) "
    "when the terminal falls behind. json: xctl's JSONL. Default: table when stdout is a "
    "terminal, else json (xctl reads a pipe). Example: "
    f"{PROG} --format table --duration 60 > rows.txt",
)


class Sort(str, enum.Enum):
    segs = "segs"
    drops = "drops"
    rate = "rate"


INTERVAL_OPTION = typer.Option(
    None, "--interval",
    min=0.1,
    max=3600.0,
    callback=lambda value: value if value is None else _finite(value),
    metavar="SECONDS",
    show_default=False,
    help="Rollups: at most one line per flow (and drop reason) per interval, segs summed, "
    "count the records merged, value, owner and timers the newest. For nodes whose xctl "
    "forwards every line to a hub. Default: a line per record. Example: "
    f"{PROG} --interval 5",
)

def _listen_address(value: Optional[str]):
    if value is None:
        return None
    try:
        return tuple(listen_address(value))
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None


METRICS_OPTION = typer.Option(
    None, "--metrics",
    callback=_listen_address,
    metavar="ADDR:PORT",
    show_default=False,
    help="Serve Prometheus metrics (OpenMetrics or text) over HTTP on this address: "
    "retransmitted segments by kind and job, dropped packets by reason and job, records "
    "lost, the ring buffer's fill, the probe's info. ADDR is an IP address, IPv6 in "
    "brackets; none for every address. Off by default; never on stdout. If it cannot be "
    f"served (port taken), one line on stderr, the stream goes on, and the exit code at the "
    f"stop is {EXIT_METRICS_UNSERVED}. Example: {PROG} --metrics 127.0.0.1:9977",
)

VERSION_OPTION = typer.Option(
    False, "--version", callback=_version, is_eager=True, help="Print the version and exit."
)


@app.callback(
    help="Stream every TCP retransmission on this node, and every TCP packet the kernel "
    "drops, as xctl JSONL events on stdout (no command: how xctl runs it), or run one of "
    "the commands below.",
    epilog=EPILOG,
)
def stream(
    ctx: typer.Context,
    window: float = WINDOW_OPTION,
    object_path: Path = OBJECT_OPTION,
    ring_kib: int = RING_KIB_OPTION,
    job_env: List[str] = JOB_ENV_OPTION,
    duration: Optional[float] = DURATION_OPTION,
    no_drops: bool = NO_DROPS_OPTION,
    drops: Optional[Drops] = DROPS_OPTION,
    format: Optional[Format] = FORMAT_OPTION,
    pid: List[int] = PID_OPTION,
    comm: List[str] = COMM_OPTION,
    port: List[int] = PORT_OPTION,
    job: List[str] = JOB_OPTION,
    cgroup: List[str] = CGROUP_OPTION,
    netns: List[str] = NETNS_OPTION,
    family: List[Family] = FAMILY_OPTION,
    kind: List[Kind] = KIND_OPTION,
    reason: List[str] = REASON_OPTION,
    interval: Optional[float] = INTERVAL_OPTION,
    metrics: Optional[str] = METRICS_OPTION,
    version: bool = VERSION_OPTION,
) -> None:
    if ctx.invoked_subcommand is not None:
        return
    filters = filters_from(pid, comm, port, job, cgroup, netns, family, kind, reason)
    shown = _drops_shown(no_drops, drops, filters)
    # Imported here, not at the top: --help, --version and usage errors stay
    # fast and work even where the binding is broken.
    from ..output.stop import StopSignals

    # Before the binding is loaded and the kernel's BTF read: a stop signal
    # while the probe starts ends it as cleanly as one that comes later.
    with StopSignals() as stop:
        from .streaming import StreamSettings, format_for, run

        settings = StreamSettings(object_path, ring_kib, window, job_env, duration, shown,
                                  format=format_for(format and format.value),
                                  interval=interval, metrics=metrics,
                                  filters=filters)
        totals = run(stop, settings, _say)
    _say_stopped(totals)
    if totals.metrics_unserved:
        raise typer.Exit(EXIT_METRICS_UNSERVED)


def _drops_shown(no_drops: bool, drops: Optional[Drops], filters) -> Optional[str]:
    """Which drops the stream reports ("loss" or "all"), None for none;
    options that contradict each other are a usage error."""
    if no_drops and drops is not None:
        raise click.UsageError("--no-drops and --drops contradict each other: give one")
    if no_drops and filters.reasons:
        raise click.UsageError("--no-drops and --reason contradict each other: give one")
    if no_drops and filters.kinds == {"drop"}:
        raise click.UsageError("--no-drops and --kind drop contradict each other: give one")
    return None if no_drops or not filters.drops else (drops or Drops.loss).value


def _say_stopped(totals) -> None:
    if not totals.stdout_closed:
        unwritten = (f"; {totals.unwritten} lines not written (stdout's reader stalled)"
                     if totals.unwritten else "")
        _say(f"stopped after {totals.lines} lines from {totals.records} records; "
             f"{totals.lost} records lost{unwritten}")


@app.command(help="A full-screen view, refreshed every second, of the flows, processes and "
             "jobs with the most retransmitted segments and dropped packets over the last "
             "--span seconds. Keys: s sorts by the next of segs, drops and rate; q (or "
             "Ctrl-C) quits, giving the terminal back as it was. stdout must be a terminal. "
             f"Example: {PROG} top --span 30 --sort drops")
def top(
    span: int = typer.Option(10, "--span", min=1, max=3600, metavar="SECONDS",
                             help="The seconds counted, newest last, in per-second steps."),
    sort: Sort = typer.Option(Sort.segs, "--sort",
                              help="What comes first: segs (retransmitted), drops, or rate "
                              "(the flow's newest, over --window)."),
    window: float = WINDOW_OPTION,
    object_path: Path = OBJECT_OPTION,
    ring_kib: int = RING_KIB_OPTION,
    job_env: List[str] = JOB_ENV_OPTION,
    duration: Optional[float] = DURATION_OPTION,
    no_drops: bool = NO_DROPS_OPTION,
    drops: Optional[Drops] = DROPS_OPTION,
    pid: List[int] = PID_OPTION,
    comm: List[str] = COMM_OPTION,
    port: List[int] = PORT_OPTION,
    job: List[str] = JOB_OPTION,
    cgroup: List[str] = CGROUP_OPTION,
    netns: List[str] = NETNS_OPTION,
    family: List[Family] = FAMILY_OPTION,
    kind: List[Kind] = KIND_OPTION,
    reason: List[str] = REASON_OPTION,
) -> None:
    if not os.isatty(1):
        raise click.UsageError("top draws on a terminal, and stdout is not one (for a pipe, "
                               "the stream writes JSONL: run it without a command)")
    filters = filters_from(pid, comm, port, job, cgroup, netns, family, kind, reason)
    shown = _drops_shown(no_drops, drops, filters)
    from ..output.stop import StopSignals

    with StopSignals() as stop:
        from .streaming import StreamSettings, run

        settings = StreamSettings(object_path, ring_kib, window, job_env, duration, shown,
                                  format="top", span=span, sort=sort.value, filters=filters)
        totals = run(stop, settings, _say)
    _say_stopped(totals)


@app.command(help="Preflight for this node: kernel, BTF, capabilities, drop reasons (how "
             "many are no loss), each hook (loaded, attached, detached), owners; one line per "
             "finding. Exit 0 when the probe can "
             "run, else the code it would fail with.")
def check(
    object_path: Path = OBJECT_OPTION,
    reasons: bool = typer.Option(False, "--reasons",
                                 help="List this kernel's drop reasons under drops, each "
                                 "with what the probe makes of it (the names --reason takes)."),
) -> None:
    from .check import run_checks

    code = run_checks(object_path, typer.echo, reasons)
    if code:
        raise typer.Exit(code)


@app.command(help="One JSON document: version, the tracepoint layout chosen on this kernel, "
             "the hooks, and the JSON Schema of the event lines.")
def describe(object_path: Path = OBJECT_OPTION) -> None:
    from .describe import describe as document

    sys.stdout.buffer.write(document(object_path) + b"\n")


@app.command(help="Print a systemd unit that runs the probe as a service with least "
             "privilege; see the README for installing it.")
def unit(
    exec_path: Optional[Path] = typer.Option(
        None,
        "--exec",
        metavar="PATH",
        show_default=False,
        help="The probe's executable for ExecStart (default: this one).",
    ),
    user: str = typer.Option("xctl-probe", "--user", metavar="NAME",
                             help="Name of the service's dynamic user."),
) -> None:
    from .unit import unit_text

    path = exec_path or Path(sys.argv[0])
    typer.echo(unit_text(str(path.resolve()), user), nl=False)


@app.command(help="Measure what the probe costs on this node and print the figures: "
             "records per second through the real path (and through a C drain), kernel ns "
             "per retransmission in a loss storm of the bench's own (a network namespace, "
             "nftables), start-up ms, peak RSS, idle CPU, and the probe under a flood of "
             "dropped SYNs. A benchmark, not a test: it "
             "takes about a minute, needs root, and leaves nothing behind.")
def bench(
    object_path: Path = OBJECT_OPTION,
    as_json: bool = typer.Option(False, "--json",
                                 help="End with one line: a JSON object of the figures."),
    records: int = typer.Option(1_000_000, "--records", min=1000, max=100_000_000,
                                metavar="N", help="Synthetic records for events_per_s."),
    flows: int = typer.Option(64, "--flows", min=1, max=65536, metavar="N",
                              help="Flows the synthetic records are spread over."),
    runs: int = typer.Option(3, "--runs", min=1, max=99, metavar="N",
                             help="Loss storms to take the median of."),
    storm_seconds: float = typer.Option(15.0, "--storm-seconds", min=1.0, max=600.0,
                                        callback=_finite, metavar="SECONDS",
                                        help="Length of each loss storm."),
    starts: int = typer.Option(5, "--starts", min=1, max=99, metavar="N",
                               help="Starts to take the median start-up time of."),
    idle_seconds: float = typer.Option(10.0, "--idle-seconds", min=1.0, max=600.0,
                                       callback=_finite, metavar="SECONDS",
                                       help="Span over which idle CPU is measured."),
    flood_seconds: float = typer.Option(10.0, "--flood-seconds", min=0.0, max=600.0,
                                        callback=_finite, metavar="SECONDS",
                                        help="Length of the flood of dropped SYNs; 0: none."),
) -> None:
    from ..bench.figures import as_json as to_json
    from ..bench.figures import run

    figures = run(object_path, records, flows, runs, storm_seconds, starts, idle_seconds,
                  flood_seconds, lambda line: typer.echo(line))
    if as_json:
        typer.echo(to_json(figures))


def main(argv: Optional[List[str]] = None) -> int:
    try:
        result = app(args=argv, prog_name=PROG, standalone_mode=False)
    except click.UsageError as exc:
        _say(f"error: {exc.format_message()} (see {PROG} --help)")
        return EXIT_USAGE
    except click.exceptions.Exit as exc:
        return exc.exit_code
    except click.Abort:
        return EXIT_OK
    except ProbeError as exc:
        _say(f"error: {exc}")
        return exc.exit_code
    except Exception as exc:  # the one place a surprise becomes a line, not a traceback
        _say(f"internal error: {type(exc).__name__}: {exc} (please report)")
        return EXIT_INTERNAL
    return result if isinstance(result, int) else EXIT_OK
