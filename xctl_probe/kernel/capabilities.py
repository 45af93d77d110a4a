"""The capabilities the probe needs, found by test (tests/kernel/test_least_privilege.py).

To load and attach its tracing programs: CAP_BPF with CAP_PERFMON (Linux
5.8+), or CAP_SYS_ADMIN, which implies both. To name a socket's owner it
lists other processes' /proc/PID/fd and reads their environ: the kernel asks
for CAP_DAC_READ_SEARCH (the directories are the owner's, mode 0500) and
CAP_SYS_PTRACE (its ptrace access check, PTRACE_MODE_READ); with either alone
no owner is found. The probe never calls ptrace().
"""

from typing import Dict, List

# include/uapi/linux/capability.h
CAP_NUMBERS: Dict[str, int] = {
    "CAP_DAC_READ_SEARCH": 2,
    "CAP_SYS_PTRACE": 19,
    "CAP_SYS_ADMIN": 21,
    "CAP_PERFMON": 38,
    "CAP_BPF": 39,
}

LOAD = ["CAP_BPF", "CAP_PERFMON"]
OWNERS = ["CAP_SYS_PTRACE", "CAP_DAC_READ_SEARCH"]
# All the probe needs: the systemd unit's set, and xctl's when it runs the probe.
SERVICE = LOAD + OWNERS


def effective() -> int:
    """This process's effective capability mask."""
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("CapEff:"):
                return int(line.split()[1], 16)
    return 0


def held(names: List[str], mask: int) -> List[str]:
    return [name for name in names if mask >> CAP_NUMBERS[name] & 1]


def can_load(mask: int) -> bool:
    return bool(held(["CAP_SYS_ADMIN"], mask)) or len(held(LOAD, mask)) == len(LOAD)
