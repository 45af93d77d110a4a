"""The filter options (--pid, --comm, --port, --job, --cgroup, --netns,
--family, --kind, --reason) as typer Options any command can put in its
signature, and the one function that checks their values and makes them
one Filters (meaning/filters.py). A bad value is one line, exit 2.

Drop reasons are checked against the running kernel's names only once its
BTF is read (``reason_codes``, from streaming.py): --help and the other
usage errors never load the binding."""

import enum
import os
import re
from pathlib import Path
from typing import TYPE_CHECKING, FrozenSet, Iterable, List, Optional

import click
import typer

from ..meaning.filters import FAMILIES, KINDS, MAX_NETNS, MAX_PORTS, Filters

if TYPE_CHECKING:
    from ..kernel.drop_reasons import DropReasons

# The kernel keeps a process's name in 16 bytes, the last a NUL.
COMM_BYTES = 15
NETNS_DIR = Path("/run/netns")
_REASON_PREFIX = "SKB_DROP_REASON_"
_REASON_NAME = re.compile(r"[A-Z0-9_]+")

Family = enum.Enum("Family", {name: name for name in FAMILIES}, type=str)
Kind = enum.Enum("Kind", {name: name for name in KINDS}, type=str)

PID_OPTION = typer.Option(
    [], "--pid", min=1, metavar="PID", show_default=False,
    help="Only lines whose owner (pid) is this process. Repeat any filter for several "
    "values: a line passes if it matches one value of each filter given.")
COMM_OPTION = typer.Option(
    [], "--comm", metavar="NAME", show_default=False,
    help="Only lines whose owner's name (comm) is exactly this (at most 15 bytes).")
PORT_OPTION = typer.Option(
    [], "--port", min=1, max=65535, metavar="PORT", show_default=False,
    help=f"Only flows with this local or remote port; up to {MAX_PORTS}. Applied in the "
    "kernel: other flows cost no record.")
JOB_OPTION = typer.Option(
    [], "--job", metavar="ID", show_default=False,
    help="Only lines whose job_id is exactly this.")
CGROUP_OPTION = typer.Option(
    [], "--cgroup", metavar="ID|PATH", show_default=False,
    help="Only lines of sockets in this cgroup v2 (cgroup_id): its id, or its directory "
    "(/sys/fs/cgroup/...), whose inode is the id. Not its children.")
NETNS_OPTION = typer.Option(
    [], "--netns", metavar="INODE|PATH", show_default=False,
    help=f"Only flows in this network namespace; up to {MAX_NETNS}: its inode (netns), a "
    "path to it (/proc/PID/ns/net, /run/netns/NAME) or a name of ip netns. Applied in "
    "the kernel.")
FAMILY_OPTION = typer.Option(
    [], "--family", show_default=False, case_sensitive=False,
    help="Only flows of this address family, as lines report it (an IPv4-mapped IPv6 flow "
    "is ipv4). Applied in the kernel.")
KIND_OPTION = typer.Option(
    [], "--kind", show_default=False, case_sensitive=False,
    help="Only lines of this kind. Without drop, dropped packets are not traced at all.")
REASON_OPTION = typer.Option(
    [], "--reason", metavar="NAME", show_default=False,
    help="Only drop lines, of this drop reason as the running kernel names it "
    "(NETFILTER_DROP; any case, SKB_DROP_REASON_ optional; `check --reasons` lists them). "
    "Applied in the kernel: other reasons cost no record. A reason that is no loss needs "
    "--drops all.")


def _bad(option: str, message: str) -> typer.BadParameter:
    return typer.BadParameter(message, param_hint=f"'{option}'")


def _inode(option: str, value: str, what: str, names: Optional[Path] = None) -> int:
    """A number as given, else the inode of the path (or of ``names``/value)."""
    if value.isdigit():
        if int(value) == 0 or int(value) >= 1 << 64:
            raise _bad(option, f"{value} is no {what} id")
        return int(value)
    path = Path(value)
    if names is not None and "/" not in value:
        path = names / value
    try:
        return os.stat(path).st_ino
    except OSError as exc:
        raise _bad(option, f"{value}: {exc.strerror}") from None


def _reason(name: str) -> str:
    name = name.upper()
    if name.startswith(_REASON_PREFIX):
        name = name[len(_REASON_PREFIX):]
    if not _REASON_NAME.fullmatch(name):
        raise _bad("--reason", f"{name!r} is no drop reason's name")
    return name


def _at_most(option: str, values: FrozenSet, limit: int) -> FrozenSet:
    if len(values) > limit:
        raise _bad(option, f"at most {limit} values ({len(values)} given)")
    return values


def filters_from(pid: Iterable[int] = (), comm: Iterable[str] = (),
                 port: Iterable[int] = (), job: Iterable[str] = (),
                 cgroup: Iterable[str] = (), netns: Iterable[str] = (),
                 family: Iterable[str] = (), kind: Iterable[str] = (),
                 reason: Iterable[str] = ()) -> Filters:
    """The options' values, checked, as one Filters; typer.BadParameter on a bad one."""
    comms = frozenset(comm)
    for name in comms:
        if not name or len(name.encode()) > COMM_BYTES:
            raise _bad("--comm", f"{name!r}: a process's name has 1 to {COMM_BYTES} bytes")
    jobs = frozenset(job)
    if "" in jobs:
        raise _bad("--job", "an empty job id")
    kinds = frozenset(getattr(value, "value", value) for value in kind)
    reasons = frozenset(_reason(name) for name in reason)
    if reasons and kinds and "drop" not in kinds:
        raise click.UsageError("--reason keeps drop lines only, and --kind leaves them out")
    return Filters(
        pids=frozenset(pid), comms=comms,
        ports=_at_most("--port", frozenset(port), MAX_PORTS), jobs=jobs,
        cgroups=frozenset(_inode("--cgroup", value, "cgroup") for value in cgroup),
        netns=_at_most("--netns", frozenset(_inode("--netns", value, "namespace", NETNS_DIR)
                                            for value in netns), MAX_NETNS),
        families=frozenset(getattr(value, "value", value) for value in family),
        kinds=kinds, reasons=reasons)


def reason_codes(filters: Filters, reasons: "DropReasons", report_all: bool) -> FrozenSet[int]:
    """The running kernel's numbers of the reasons ``filters`` asks for;
    click.UsageError for a name it does not have, or one that is no loss
    without --drops all (nothing would pass)."""
    from ..meaning import drop_classes

    codes: List[int] = []
    for name in sorted(filters.reasons):
        code = reasons.code(name)
        if code is None:
            raise click.UsageError(f"--reason {name}: this kernel names no such drop reason "
                                   "(`xctl-probe-ebpf check --reasons` lists them)")
        group = drop_classes.BY_NAME.get(name)
        if group is drop_classes.NO_DROP:
            raise click.UsageError(f"--reason {name} is no drop: it is never reported")
        if not report_all and group is not None and group.drop_class == drop_classes.NOT_LOSS:
            raise click.UsageError(f"--reason {name} is no loss ({group.label}): add "
                                   "--drops all to report it")
        codes.append(code)
    return frozenset(codes)
