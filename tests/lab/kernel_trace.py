"""The kernel's own trace events, beside the probe's: they see what no BPF
program sees."""

import itertools
import os
import re
import subprocess
from typing import Dict, List, Optional

TRACEFS = "/sys/kernel/tracing"
_TRACES = itertools.count()


class KernelTrace:
    """The kernel's own trace events (``{"skb/kfree_skb": filter or None}``),
    in a trace instance of the caller's own (tracefs mounted if it is not).
    They see every event, also those that happen on top of a thread of PID 1,
    where no BPF program runs on these machines (kernel-notes)."""

    def __init__(self, events: Dict[str, Optional[str]]):
        if not os.path.ismount(TRACEFS):
            subprocess.run(["mount", "-t", "tracefs", "nodev", TRACEFS], check=True)
        self.path = f"{TRACEFS}/instances/xpt-{os.getpid()}-{next(_TRACES)}"
        os.mkdir(self.path)
        self._events = list(events)
        for event, condition in events.items():
            if condition:
                with open(f"{self.path}/events/{event}/filter", "w") as f:
                    f.write(condition)
            with open(f"{self.path}/events/{event}/enable", "w") as f:
                f.write("1")

    def tasks(self) -> List[int]:
        """The thread id each event ran on top of, in order."""
        with open(f"{self.path}/trace") as f:
            return [int(m.group(1)) for m in re.finditer(r"-(\d+)\s+\[\d+\].*?: \w+:", f.read())]

    def on_pid1(self) -> int:
        """How many of the events ran on top of a thread of PID 1."""
        threads = {int(tid) for tid in os.listdir("/proc/1/task")}
        return sum(tid in threads for tid in self.tasks())

    def close(self) -> None:
        for event in self._events:
            with open(f"{self.path}/events/{event}/enable", "w") as f:
                f.write("0")
        os.rmdir(self.path)
