"""Which processes hold a descriptor for a socket, asked of the kernel: one
pass of the probe's iterator over every process's open files
(bpf/holders.bpf.h), which writes back only the sockets whose inodes are
asked about. It reads no /proc/PID/fd, so it needs no privilege over other
processes, and a pass over a node's files costs microseconds where walking
/proc from Python costs milliseconds.
"""

import os
from typing import Collection, Dict, List, Optional, Set

from ..errors import KernelUnsupported
from . import libbpf_log
from .binding import ffi, lib
from .bpf_object import BpfObject

HOLDERS_PROGRAM = "xp_socket_holders"
WANTED_MAP = "wanted_inodes"


class SocketHolderPasses:
    """The iterator, ready to run; ``close()`` releases it."""

    def __init__(self, obj: BpfObject):
        libbpf_log.reset()
        self._link = lib.bpf_program__attach_iter(obj.program(HOLDERS_PROGRAM), ffi.NULL)
        if self._link == ffi.NULL:
            raise KernelUnsupported(f"cannot create the iterator over processes' files: "
                                    f"{os.strerror(ffi.errno)}{libbpf_log.says()}")
        self._wanted_fd = obj.map_fd(WANTED_MAP)
        self._room = 256
        self._out = ffi.new("struct xp_holder[]", self._room)

    def holders(self, inodes: Collection[int]) -> Optional[Dict[int, Set[int]]]:
        """{inode: pids holding it} for the socket inodes in ``inodes`` that
        are held; None if the kernel failed a pass (ask again later)."""
        wanted = list(inodes)
        found: Dict[int, Set[int]] = {}
        for start in range(0, len(wanted), lib.XP_HOLDERS_WANTED):
            if not self._one_pass(wanted[start:start + lib.XP_HOLDERS_WANTED], found):
                return None
        return found

    def _one_pass(self, inodes: List[int], found: Dict[int, Set[int]]) -> bool:
        asked = ffi.new("uint64_t[]", inodes)
        link_fd = lib.bpf_link__fd(self._link)
        count = lib.xp_socket_holders(link_fd, self._wanted_fd, asked, len(inodes), self._out,
                                      self._room)
        if count > self._room:
            self._room = 2 * count
            self._out = ffi.new("struct xp_holder[]", self._room)
            count = lib.xp_socket_holders(link_fd, self._wanted_fd, asked, len(inodes),
                                          self._out, self._room)
        if count < 0 or count > self._room:
            return False
        for holder in self._out[0:count]:
            found.setdefault(holder.ino, set()).add(holder.tgid)
        return True

    def close(self) -> None:
        if self._link != ffi.NULL:
            lib.bpf_link__destroy(self._link)
            self._link = ffi.NULL
