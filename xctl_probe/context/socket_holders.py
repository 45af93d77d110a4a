"""Which processes hold a descriptor for a socket's file, asked of the kernel
(xctl_probe/kernel/holders.py: one pass of an iterator over every process's
open files, which answers only for the socket inodes asked about).

A pass visits every descriptor on the node, so passes are rationed by a
budget of time: it refills at ``cpu_share`` of wall-clock time, up to
``burst`` seconds, so a burst of new sockets is looked up at once and a
steady churn of them costs at most that share of a CPU. One pass looks up
every inode wanted at the time; the answer is kept for each.
"""

import time
from typing import Callable, Dict, FrozenSet, Iterable, Optional, Set

from .bounded_map import BoundedMap

# Lookups that found no holder are tried again on this many later passes.
_RETRIES = 3

# {inode: pids holding it} for those of the inodes that are held; None when
# the kernel could not answer this time.
FindHolders = Callable[[Set[int]], Optional[Dict[int, Set[int]]]]


class PassBudget:
    """Seconds of passes allowed now: spent by passes, refilled by time passing."""

    def __init__(self, cpu_share: float, burst: float):
        self._cpu_share = cpu_share
        self._burst = burst
        self._left = burst
        self._refilled_at = time.monotonic()

    def refill(self, now: float) -> bool:
        """Whether a pass may start at ``now``."""
        self._left = min(self._burst, self._left + (now - self._refilled_at) * self._cpu_share)
        self._refilled_at = now
        return self._left > 0

    def spend(self, seconds: float) -> None:
        self._left -= seconds


class SocketHolders:
    def __init__(self, find: FindHolders, cpu_share: float, burst: float, limit: int):
        self._find = find
        self._budget = PassBudget(cpu_share, burst)
        self._holders: "BoundedMap[int, FrozenSet[int]]" = BoundedMap(limit)
        # Bounded like the answers: a churn of sockets that never find a
        # holder must not grow it.
        self._misses: "BoundedMap[int, int]" = BoundedMap(limit)

    def prepare(self, inodes: Iterable[int]) -> None:
        """Looks up, in one pass if the budget allows, the inodes not known yet."""
        wanted = {ino for ino in inodes if ino and ino not in self._holders}
        if not wanted:
            return
        started = time.monotonic()
        if not self._budget.refill(started):
            return
        found = self._find(wanted)
        self._budget.spend(time.monotonic() - started)
        if found is None:
            return
        for ino in wanted:
            if ino in found:
                self._holders.put(ino, frozenset(found[ino]))
                self._misses.pop(ino, None)
            else:
                self._missed(ino)

    def _missed(self, ino: int) -> None:
        """After _RETRIES passes without a holder, the answer is that there is none."""
        misses = self._misses.get(ino, 0) + 1
        if misses >= _RETRIES:
            self._holders.put(ino, frozenset())
            self._misses.pop(ino, None)
        else:
            self._misses.put(ino, misses)

    def get(self, ino: int) -> Optional[FrozenSet[int]]:
        """The pids holding ``ino`` as last found; None if not looked up yet."""
        return self._holders.get(ino)
