"""The kernel's own trace events, beside the probe's: they see what no BPF
program sees."""

import itertools
import os
import re
import subprocess
from dataclasses import dataclass
from typing import Dict, List, Optional

TRACEFS = "/sys/kernel/tracing"
_TRACES = itertools.count()
# "  comm-TID  [CPU] FLAGS  SECONDS: EVENT: key=value key=value ..." (comm may hold
# spaces and dashes; the flags column is there unless the irq-info option is off).
_LINE = re.compile(r"^.*?-(\d+)\s+\[\d+\]\s+(?:\S+\s+)?\d+\.\d+: (\w+): (.*)$")
# include/uapi/linux/tcp.h: TCP_CA_Recovery, TCP_CA_Loss.
CA_RECOVERY, CA_LOSS = 3, 4


def port_filter(port: int) -> str:
    """A tracefs filter for the tcp: events of flows on ``port`` (sport and dport
    are fields of each of them, in every layout since 5.x): a test counts only
    its own flows, never another retransmission on the machine."""
    return f"sport == {port} || dport == {port}"


@dataclass(frozen=True)
class TraceEvent:
    tid: int  # the thread the event ran on top of
    name: str  # tcp_retransmit_skb, ...
    fields: Dict[str, str]


def _make_instance_without_cmdlines(path: str) -> None:
    """A trace instance that records no task names. Recording them hooks
    sched_switch while any event is on, which patches __schedule's code each
    time a trace starts and ends; in a guest under emulation, a CPU that runs
    __schedule while another patches it took an int3 oops and the guest
    panicked (6.12, CI). An instance takes its options from the top level
    when it is made, and this one cannot be changed in the instance itself,
    so it is off at the top level for that moment only."""
    option = f"{TRACEFS}/options/record-cmd"
    with open(option) as f:
        was = f.read().strip()
    with open(option, "w") as f:
        f.write("0")
    try:
        os.mkdir(path)
    finally:
        with open(option, "w") as f:
            f.write(was)


CONG_STATE = "tcp/tcp_cong_state_set"


def _mount() -> None:
    """tracefs, mounted if it is not."""
    if not os.path.ismount(TRACEFS):
        subprocess.run(["mount", "-t", "tracefs", "nodev", TRACEFS], check=True)


class KernelTrace:
    """The kernel's own trace events (``{"skb/kfree_skb": filter or None}``),
    in a trace instance of the caller's own (tracefs mounted if it is not).
    They see every event, also those that happen on top of a thread of PID 1,
    where no BPF program runs on these machines (kernel-notes)."""

    def __init__(self, events: Dict[str, Optional[str]]):
        _mount()
        self.path = f"{TRACEFS}/instances/xpt-{os.getpid()}-{next(_TRACES)}"
        _make_instance_without_cmdlines(self.path)
        # One clock for every CPU: events of one socket that ran on different
        # CPUs (under its lock, so one after the other) are read in the order
        # they happened; the default per-CPU clock does not promise that.
        with open(f"{self.path}/trace_clock", "w") as f:
            f.write("mono")
        self._events = list(events)
        for event, condition in events.items():
            if condition:
                with open(f"{self.path}/events/{event}/filter", "w") as f:
                    f.write(condition)
            with open(f"{self.path}/events/{event}/enable", "w") as f:
                f.write("1")

    @classmethod
    def retransmissions(cls, port: int, cong_states: bool = False) -> "KernelTrace":
        """Every retransmission (a socket's, a request's SYN-ACK) of the flows on
        ``port``; with ``cong_states``, their sockets' congestion state changes too."""
        events = {"tcp/tcp_retransmit_skb": port_filter(port),
                  "tcp/tcp_retransmit_synack": port_filter(port)}
        # Linux 5.15 and later have it; before, skipped_by_state() can tell
        # only SYNs and SYN-ACKs apart.
        if cong_states:
            _mount()
            if os.path.isdir(f"{TRACEFS}/events/{CONG_STATE}"):
                events[CONG_STATE] = port_filter(port)
        return cls(events)

    def events(self) -> List[TraceEvent]:
        """The events, in order."""
        with open(f"{self.path}/trace") as f:
            found = []
            for line in f:
                match = _LINE.match(line)
                if match:
                    found.append(TraceEvent(int(match.group(1)), match.group(2), dict(
                        field.split("=", 1) for field in match.group(3).split() if "=" in field)))
            return found

    def tasks(self) -> List[int]:
        """The thread id each event ran on top of, in order."""
        return [event.tid for event in self.events()]

    def on_pid1(self) -> int:
        """How many of the events ran on top of a thread of PID 1."""
        threads = pid1_threads()
        return sum(tid in threads for tid in self.tasks())

    def skipped_by_state(self) -> Dict[str, int]:
        """The retransmissions no BPF program saw, for they ran on top of a
        thread of PID 1, by what decides their kind (event.kind): a request's
        SYN-ACK ("synack"), a SYN (the socket in SYN_SENT: "syn"), else the
        socket's congestion state at that moment ("recovery", "loss" or
        "other"), from its tcp_cong_state_set events before it (a trace made
        with cong_states; a socket known by its ports, as that event prints
        no address of it). A socket not seen changing state is in Open."""
        threads = pid1_threads()
        state: Dict[tuple, int] = {}
        skipped = dict.fromkeys(("synack", "syn", "recovery", "loss", "other"), 0)
        for event in self.events():
            flow = event.fields["sport"], event.fields["dport"]
            if event.name == "tcp_cong_state_set":
                state[flow] = int(event.fields["cong_state"])
            elif event.tid not in threads:
                continue
            elif event.name == "tcp_retransmit_synack":
                skipped["synack"] += 1
            elif event.fields["state"] == "TCP_SYN_SENT":
                skipped["syn"] += 1
            elif CONG_STATE not in self._events:
                raise RuntimeError("a retransmission no BPF program saw, and no "
                                   f"{CONG_STATE} on this kernel to tell its kind")
            else:
                named = {CA_RECOVERY: "recovery", CA_LOSS: "loss"}.get(state.get(flow), "other")
                skipped[named] += 1
        return skipped

    def close(self) -> None:
        for event in self._events:
            with open(f"{self.path}/events/{event}/enable", "w") as f:
                f.write("0")
        os.rmdir(self.path)


def pid1_threads() -> set:
    """The thread ids of PID 1 (this VM's init) now."""
    return {int(tid) for tid in os.listdir("/proc/1/task")}
