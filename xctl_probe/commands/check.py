"""``check``: can the probe run on this node, and how well. One finding per
line, each ``ok``, ``warn`` (it runs, with less) or ``FAIL`` (it cannot run),
and the exit code the probe itself would fail with, 0 when it can run. A
program the kernel refused is followed by the last lines of the verifier's
log, indented, the whole of which is where the finding says."""

import os
import platform
import socket
from pathlib import Path
from typing import Callable, List, NamedTuple, Optional, Tuple

from ..errors import EXIT_OK, ProbeError
from ..kernel import capabilities, preconditions
from ..kernel.drop_policy import DropPolicy
from ..kernel.drop_reasons import reported_reasons
from ..kernel.loader import LoadedProbe
from ..kernel.preconditions import KERNEL_BTF
from ..meaning import drop_classes

# Under the topic, past "FAIL ".
DETAIL_INDENT = " " * 5


class Finding(NamedTuple):
    status: str  # "ok", "warn" or "FAIL"
    topic: str
    text: str
    details: Tuple[str, ...] = ()  # lines under it, indented: the end of a verifier's log

    def __str__(self) -> str:
        return "\n".join([f"{self.status:<4} {self.topic}: {self.text}",
                          *(f"{DETAIL_INDENT}{line}" for line in self.details)])


def _kernel() -> Finding:
    uname = platform.uname()
    return Finding("ok", "kernel", f"Linux {uname.release} ({uname.machine})")


def _btf() -> Tuple[Finding, int]:
    unmet = preconditions.kernel_btf()
    if unmet is not None:
        return Finding("FAIL", "btf", unmet.finding), unmet.error.exit_code
    size = KERNEL_BTF.stat().st_size
    return Finding("ok", "btf", f"{KERNEL_BTF} ({size // 1024} KiB)"), EXIT_OK


def _capabilities(mask: int) -> Tuple[Finding, int]:
    wanted = capabilities.SERVICE
    holds = capabilities.held(wanted + ["CAP_SYS_ADMIN"], mask)
    lacks = [name for name in wanted if name not in holds]
    text = f"uid {os.geteuid()} holds {', '.join(holds) or 'none of them'}"
    if lacks:
        text += f"; lacks {', '.join(lacks)}"
    unmet = preconditions.privileges(mask)
    if unmet is not None:
        return Finding("FAIL", "capabilities", f"{text}: {unmet.finding}"), unmet.error.exit_code
    return Finding("warn" if lacks else "ok", "capabilities", text), EXIT_OK


def _drops(listed: bool = False) -> Tuple[Finding, Optional[DropPolicy]]:
    """Whether drops can be reported (the kernel names its drop reasons in
    BTF), how the table of losses meets this kernel, and the policy to load;
    ``listed``: each reason's name under it, as --reason takes them."""
    reasons, said = reported_reasons(KERNEL_BTF)
    if reasons is None:
        return Finding("warn", "drops", f"{said}: retransmissions only"), None
    said = f"{said}; {drop_classes.summary(reasons)}"
    names = tuple(f"{name} ({drop_classes.label(name)})" for _, name in sorted(reasons.items())
                  ) if listed else ()
    return Finding("ok", "drops", said, names), drop_classes.policy(reasons)


def _hooks(object_path: Path, drops: Optional[DropPolicy]) -> Tuple[List[Finding], int]:
    try:
        with LoadedProbe(object_path, drops=drops) as probe:
            found = [Finding("ok", "hook", f"{hook} loads and attaches")
                     for hook in probe.hooks]
            found.append(Finding("ok", "layout", probe.layout))
            found.append(Finding("ok", "sockets", probe.sockets))
            found.append(
                Finding("ok", "hz", f"HZ {probe.hz}, from the {probe.hz_source}") if probe.hz
                else Finding("warn", "hz", "HZ cannot be told (no kernel config on the node, "
                             "and jiffies are near their start value): lines leave out rto_ms "
                             "and stalled_ms"))
            found.append(_owners(probe))
        return found + [Finding("ok", "detach", "all programs detached")], EXIT_OK
    except ProbeError as exc:
        return [Finding("FAIL", "hooks", str(exc), exc.details)], exc.exit_code


def _owners(probe: LoadedProbe) -> Finding:
    """Whether the kernel names the holder of a socket: this process's own."""
    with socket.socket() as own:
        ino = os.fstat(own.fileno()).st_ino
        holders = probe.socket_holders({ino})
    if holders is None or os.getpid() not in holders.get(ino, ()):
        return Finding("warn", "owners", "the kernel's iterator over processes' files did not "
                       "find this process's own socket: lines will name owners only from what "
                       "the kernel remembered at connect() and close()")
    return Finding("ok", "owners", "the kernel's iterator over processes' files names the "
                   "holders of sockets")


def _environment(proc: str = "/proc") -> Finding:
    """Whether other processes' environment can be read, for their jobs."""
    own = {str(os.getpid()), str(os.getppid())}
    readable = denied = 0
    for entry in os.scandir(proc):
        if not entry.name.isdigit() or entry.name in own:
            continue
        try:
            with open(f"{entry.path}/environ", "rb"):
                readable += 1
        except PermissionError:
            denied += 1
        except OSError:  # gone meanwhile
            continue
    total = readable + denied
    if denied:
        return Finding("warn", "environment", f"/proc/PID/environ of {denied} of {total} "
                       "processes cannot be read: their jobs come from cgroups only (grant "
                       f"{' and '.join(capabilities.ENVIRONMENT)} for SLURM_JOB_ID)")
    return Finding("ok", "environment", f"/proc/PID/environ of all {total} other processes "
                   "readable")


def run_checks(object_path: Path, say: Callable[[str], None], reasons: bool = False) -> int:
    """Prints each finding as it is made (``reasons``: this kernel's drop
    reasons listed under drops); returns the exit code."""
    say(str(_kernel()))
    btf, btf_code = _btf()
    say(str(btf))
    caps, caps_code = _capabilities(capabilities.effective())
    say(str(caps))
    code = btf_code or caps_code
    if code == EXIT_OK:
        drops, drop_policy = _drops(reasons)
        say(str(drops))
        hooks, code = _hooks(object_path, drop_policy)
        for finding in hooks:
            say(str(finding))
    else:
        say(str(Finding("FAIL", "hooks", "not tried: see above")))
    say(str(_environment()))
    return code
