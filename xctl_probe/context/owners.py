"""Who owns a socket: its pid, comm and job, found lazily through /proc.

Retransmissions mostly fire in softirq, where the task on the CPU is anyone
(the receiver, ksoftirqd, pid 0). The record carries instead the inode of
the socket's file, and the owner is the process holding a descriptor for
it: /proc/PID/fd/N links to ``socket:[INODE]``. This works for sockets opened
before the probe started, and costs the TCP fast path nothing: no BPF program
runs per send or receive. User space looks a socket up once, the first time
it retransmits, and remembers the answer until the socket is destroyed
(or has given no line for ``max_age`` seconds).

Several holders (a socket shared across fork): the one on whose CPU time the
kernel last retransmitted for that socket (its tgid is in the record), else
the one chosen before, else the lowest pid, normally the parent that opened
it. A socket the kernel has orphaned (closed, still retransmitting) keeps the
owner it had. One that had no line before close() took its file away is
named by the kernel itself: the probe remembers, in the socket's storage,
the process that connected it and the one that closed it (bpf/probe.bpf.c),
in their own context, so the answer holds after they exit. An owner that
cannot be found is left out, never guessed.

A /proc walk reads every descriptor on the node, so walks are rationed by a
budget of walking time: it refills at a tenth of wall-clock time, up to
``burst`` seconds, so a burst of new sockets is looked up at once and a
steady churn of them costs at most a tenth of a CPU.
"""

import os
import time
from collections import OrderedDict
from typing import Dict, FrozenSet, Iterable, Optional, Sequence, Set, Tuple

import msgspec

from .jobs import pod_uid

# Lookups that found no holder are tried again on this many later walks.
_RETRIES = 3


class Owner(msgspec.Struct, frozen=True, gc=False):
    pid: int
    comm: str
    job_id: Optional[str]


def _text(raw: bytes) -> str:
    """Kernel bytes as valid UTF-8 whatever they hold: invalid bytes become \\xNN."""
    return raw.decode("utf-8", "backslashreplace")


class _Lru:
    """A map bounded by count and by age: the least recently put go first,
    and an entry put more than ``max_age`` seconds ago goes at the next put."""

    def __init__(self, limit: int, max_age: float = float("inf")):
        self._items: "OrderedDict[object, Tuple[float, object]]" = OrderedDict()
        self._limit = limit
        self._max_age = max_age

    def __len__(self) -> int:
        return len(self._items)

    def __contains__(self, key) -> bool:
        return key in self._items

    def get(self, key, default=None):
        item = self._items.get(key)
        return default if item is None else item[1]

    def pop(self, key, default=None):
        item = self._items.pop(key, None)
        return default if item is None else item[1]

    def put(self, key, value) -> None:
        now = time.monotonic()
        self._items[key] = (now, value)
        self._items.move_to_end(key)
        if len(self._items) > self._limit:
            self._items.popitem(last=False)
        while now - next(iter(self._items.values()))[0] > self._max_age:
            self._items.popitem(last=False)


class Owners:
    def __init__(
        self,
        job_env: Sequence[str] = ("SLURM_JOB_ID",),
        proc: str = "/proc",
        cpu_share: float = 0.1,
        burst: float = 0.5,
        process_ttl: float = 10.0,
        limit: int = 65536,
        max_age: float = 600.0,
    ):
        self._job_env = [name.encode() + b"=" for name in job_env]
        self._proc = proc
        self._cpu_share = cpu_share
        self._burst = burst
        self._budget = burst
        self._refilled_at = time.monotonic()
        self._process_ttl = process_ttl
        self._holders: "_Lru[int, FrozenSet[int]]" = _Lru(limit)
        self._misses: Dict[int, int] = {}
        # Keyed by socket cookie, which no other socket ever gets.
        self._chosen: "_Lru[int, int]" = _Lru(limit, max_age)
        self._processes: "_Lru[int, Tuple[float, Optional[Owner]]]" = _Lru(4096)

    def prepare(self, inodes: Iterable[int]) -> None:
        """Looks up, in one /proc walk if one is due, the inodes not known yet."""
        wanted = {ino for ino in inodes if ino and ino not in self._holders}
        if not wanted:
            return
        started = time.monotonic()
        self._budget = min(self._burst,
                           self._budget + (started - self._refilled_at) * self._cpu_share)
        self._refilled_at = started
        if self._budget <= 0:
            return
        found = self._walk(wanted)
        self._budget -= time.monotonic() - started
        for ino in wanted:
            if ino in found:
                self._holders.put(ino, frozenset(found[ino]))
                self._misses.pop(ino, None)
            else:
                misses = self._misses.get(ino, 0) + 1
                if misses >= _RETRIES:
                    self._holders.put(ino, frozenset())
                    self._misses.pop(ino, None)
                else:
                    self._misses[ino] = misses

    def _walk(self, wanted: Set[int]) -> Dict[int, Set[int]]:
        links = {f"socket:[{ino}]": ino for ino in wanted}
        found: Dict[int, Set[int]] = {}
        try:
            entries = list(os.scandir(self._proc))
        except OSError:
            return found
        for entry in entries:
            if not entry.name.isdigit():
                continue
            try:
                descriptors = os.scandir(f"{entry.path}/fd")
            except OSError:  # gone, or not ours to read
                continue
            with descriptors:
                for fd in descriptors:
                    try:
                        ino = links.get(os.readlink(fd.path))
                    except OSError:
                        continue
                    if ino is not None:
                        found.setdefault(ino, set()).add(int(entry.name))
        return found

    def owner(self, cookie: int, ino: int, tgid: int, remembered_pid: int = 0,
              remembered_comm: bytes = b"") -> Optional[Owner]:
        """The owner of the socket ``cookie`` whose file is ``ino`` (0 if none):
        the holder of its file; else the one chosen before; else the process
        the kernel remembered connecting or closing it (``remembered_pid``,
        with its comm as it was then), which may have exited since."""
        holders = self._holders.get(ino) if ino else None
        pid = self._chosen.get(cookie)
        if holders:
            if tgid in holders:
                pid = tgid
            elif pid not in holders:
                pid = min(holders)
            self._chosen.put(cookie, pid)
        if pid is None:
            return self._remembered(remembered_pid, remembered_comm) if remembered_pid else None
        return self._process(pid)

    def _remembered(self, pid: int, comm: bytes) -> Owner:
        """The comm the kernel took, and the job only while the process that
        had it is still there to say (the same comm: not a reused pid)."""
        then = _text(comm.split(b"\0", 1)[0])
        now = self._process(pid)
        if now is not None and now.comm == then:
            return now
        return Owner(pid=pid, comm=then, job_id=None)

    def forget(self, cookie: int) -> None:
        self._chosen.pop(cookie, None)

    def _process(self, pid: int) -> Optional[Owner]:
        now = time.monotonic()
        cached = self._processes.get(pid)
        if cached is not None and now - cached[0] < self._process_ttl:
            return cached[1]
        owner = self._read_process(pid)
        if owner is None and cached is not None:
            owner = cached[1]  # it has exited since: keep what it was
        self._processes.put(pid, (now, owner))
        return owner

    def _read_process(self, pid: int) -> Optional[Owner]:
        base = f"{self._proc}/{pid}"
        try:
            with open(f"{base}/comm", "rb") as f:
                comm = _text(f.read().rstrip(b"\n"))
        except OSError:
            return None
        return Owner(pid=pid, comm=comm, job_id=self._job_id(base))

    def _job_id(self, base: str) -> Optional[str]:
        try:
            with open(f"{base}/environ", "rb") as f:
                environ = f.read().split(b"\0")
        except OSError:
            environ = []
        for prefix in self._job_env:
            for variable in environ:
                if variable.startswith(prefix) and len(variable) > len(prefix):
                    return _text(variable[len(prefix):])
        try:
            with open(f"{base}/cgroup", "rb") as f:
                return pod_uid(f.read().decode(errors="replace"))
        except OSError:
            return None
