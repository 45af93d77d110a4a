"""Programs the loaded object runs once, through BPF_PROG_TEST_RUN, to tell
user space what only the kernel knows: which tcp_retransmit_skb layout CO-RE
chose on this kernel, and the kernel's jiffies (from which HZ is found when
the kernel's configuration is not on the node). They never run on an event.
"""

import os
import time

from ..errors import KernelUnsupported
from . import libbpf_log, ticks
from .binding import lib
from .bpf_object import BpfObject

LAYOUT_PROGRAM = "xp_report_layout"
JIFFIES_PROGRAM = "xp_report_jiffies"
LOAD_TIME_PROGRAMS = (LAYOUT_PROGRAM, JIFFIES_PROGRAM)


def _test_run(obj: BpfObject, name: str, what: str) -> int:
    result = lib.xp_test_run(lib.bpf_program__fd(obj.program(name)))
    if result < 0:
        raise KernelUnsupported(f"cannot run {what}: {os.strerror(-result)}{libbpf_log.says()}")
    return result


def err_layout(obj: BpfObject) -> bool:
    """Whether CO-RE chose tcp_retransmit_skb(sk, skb, err), asked of the loaded object."""
    return bool(_test_run(obj, LAYOUT_PROGRAM, "the layout check"))


def describe_layout(err_argument: bool) -> str:
    if err_argument:
        return "tcp_retransmit_skb(sk, skb, err), Linux 6.17+"
    return "tcp_retransmit_skb(sk, skb), before Linux 6.17"


def read_jiffies(obj: BpfObject) -> ticks.Reading:
    """The kernel's jiffies (low bits) and the monotonic time they were read at."""
    before = time.monotonic_ns()
    jiffies = _test_run(obj, JIFFIES_PROGRAM, "the jiffies reading")
    return jiffies, (before + time.monotonic_ns()) // 2
