"""The capabilities the probe needs, found by test (tests/kernel/test_least_privilege.py).

To load and attach its programs, and to ask the kernel which processes hold
a socket (its iterator over processes' files, which reads no /proc/PID/fd):
CAP_BPF with CAP_PERFMON (Linux 5.8+), or CAP_SYS_ADMIN, which implies both.
That is all the systemd unit grants, and it suffices on 6.1, 6.12 and 6.18
because libbpf is kept from the kernel modules' BTF, which only CAP_SYS_ADMIN
may enumerate (bpf_object.py).

To read a job from the environment of another user's process (SLURM_JOB_ID,
or the variables --job-env names, where no cgroup names the job), the
kernel asks for CAP_DAC_READ_SEARCH (environ is the process's own, mode 0400)
and CAP_SYS_PTRACE (its ptrace access check, PTRACE_MODE_READ); with either
alone no environment is read. The unit leaves them out: CAP_SYS_PTRACE
would let the probe read any process's memory. The probe never calls ptrace().
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
# Only to read other users' processes' environment, for their jobs.
ENVIRONMENT = ["CAP_SYS_PTRACE", "CAP_DAC_READ_SEARCH"]
# All the probe needs: the systemd unit's set, and xctl's when it runs the probe.
SERVICE = LOAD


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
