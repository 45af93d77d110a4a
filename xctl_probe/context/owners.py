"""Who owns a socket: its pid, comm and job.

Retransmissions mostly fire in softirq, where the task on the CPU is anyone
(the receiver, ksoftirqd, pid 0). The record carries instead the inode of
the socket's file, and the owner is the process holding a descriptor for
it, which the kernel tells. This works for sockets opened before the probe
started, and costs the TCP fast path nothing: no BPF program runs per send
or receive. User space looks a socket up once, the first time it
retransmits, and remembers the answer until the socket is destroyed (or has
given no line for ``max_age`` seconds).

Several holders (a socket shared across fork): the one on whose CPU time the
kernel last retransmitted for that socket (its tgid is in the record), else
the one chosen before, else the lowest pid, normally the parent that opened
it. A socket the kernel has orphaned (closed, still retransmitting) keeps the
owner it had. One that had no line before close() took its file away is
named by the kernel itself: the probe remembers, in the socket's storage,
the process that connected it and the one that closed it (bpf/probe.bpf.c),
in their own context, so the answer holds after they exit. An owner that
cannot be found is left out, never guessed.

Finding holders is socket_holders.py (rationed passes of the kernel's
iterator); what a line says of a process is processes.py. This module
chooses among them.
"""

from typing import Iterable, Optional, Sequence, Tuple

from .bounded_map import BoundedMap
from .processes import Owner, Processes, kernel_text
from .socket_holders import FindHolders, SocketHolders


class Owners:
    def __init__(
        self,
        find_holders: FindHolders,
        job_env: Sequence[str] = ("SLURM_JOB_ID",),
        proc: str = "/proc",
        cpu_share: float = 0.1,
        burst: float = 0.5,
        process_ttl: float = 10.0,
        limit: int = 65536,
        max_age: float = 600.0,
    ):
        self._holders = SocketHolders(find_holders, cpu_share, burst, limit)
        self._processes = Processes(job_env, proc, process_ttl)
        # The owner chosen for each socket, keyed by its cookie, which no other
        # socket ever gets: (pid, None) for a holder of its file, (pid, comm as
        # the kernel took it) for a process the kernel remembered.
        self._chosen: "BoundedMap[int, Tuple[int, Optional[bytes]]]" = BoundedMap(limit, max_age)

    def prepare(self, inodes: Iterable[int]) -> None:
        """Looks up, in one pass of the kernel's if one is due, the inodes not known yet."""
        self._holders.prepare(inodes)

    def held(self, ino: int) -> bool:
        """Whether the socket file ``ino`` had a holder when last looked up."""
        return bool(self._holders.get(ino)) if ino else False

    def owner(self, cookie: int, ino: int, tgid: int, remembered_pid: int = 0,
              remembered_comm: bytes = b"") -> Optional[Owner]:
        """The owner of the socket ``cookie`` whose file is ``ino`` (0 if none):
        the holder of its file; else the holder chosen before; else the
        process the kernel remembered connecting or closing it
        (``remembered_pid``, with its comm as it was then, which may have
        exited since), or the one it remembered before."""
        holders = self._holders.get(ino) if ino else None
        chosen = self._chosen.get(cookie)
        if holders:
            pid = chosen[0] if chosen else None
            if tgid in holders:
                pid = tgid
            elif pid not in holders:
                pid = min(holders)
            self._chosen.put(cookie, (pid, None))
            return self._processes.get(pid)
        if remembered_pid and (chosen is None or chosen[1] is not None):
            chosen = (remembered_pid, remembered_comm)
            self._chosen.put(cookie, chosen)
        if chosen is None:
            return None
        pid, comm = chosen
        return self._processes.get(pid) if comm is None else self._remembered(pid, comm)

    def _remembered(self, pid: int, comm: bytes) -> Owner:
        """The comm the kernel took, and the job only while the process that
        had it is still there to say (the same comm: not a reused pid)."""
        then = kernel_text(comm.split(b"\0", 1)[0])
        now = self._processes.get(pid)
        if now is not None and now.comm == then:
            return now
        return Owner(pid=pid, comm=then, job_id=None)

    def forget(self, cookie: int) -> None:
        self._chosen.pop(cookie, None)
