"""The local socket a dropped packet belongs to, found by its addresses and
ports in its network namespace.

The kernel often drops a packet before it has looked its socket up (a
netfilter rule on input), so the record names none. Each namespace lists its
TCP sockets, with their inodes, in /proc/PID/net/tcp and tcp6 of any process
inside it: the first process found in the namespace (by /proc/PID/ns/net)
serves. A listing is read again only when a lookup misses, at most once per
``refresh_s`` per namespace, so a storm of drops costs one read a second.

A packet matches the socket of its exact four-tuple (local side first, as
records give it), else a socket listening on its local address and port (a
SYN, or a packet the listener would have got).
"""

import os
import time
from typing import Dict, Optional, Tuple

# (local address, local port, remote address, remote port); IPv4 addresses
# as records carry them: four bytes then twelve zeros.
Tuple4 = Tuple[bytes, int, bytes, int]

_ANY = bytes(16)
# RFC 4291: an IPv4 address in an IPv6 socket, as the kernel keeps it.
V4_MAPPED = b"\x00" * 10 + b"\xff\xff"
_TCP_LISTEN = 0x0A


def _address(text: str) -> bytes:
    """/proc/net/tcp's hex address (each 32-bit word in host order) as 16 bytes."""
    words = [int(text[i:i + 8], 16).to_bytes(4, "little") for i in range(0, len(text), 8)]
    packed = b"".join(words)
    if len(packed) == 4:
        return packed + bytes(12)
    if packed.startswith(V4_MAPPED):
        return packed[12:] + bytes(12)
    return packed


class _Listing:
    __slots__ = ("read_at", "exact", "listening")

    def __init__(self):
        self.read_at = float("-inf")
        self.exact: Dict[Tuple4, int] = {}
        self.listening: Dict[Tuple[bytes, int], int] = {}


class SocketsByTuple:
    def __init__(self, proc: str = "/proc", refresh_s: float = 1.0, max_namespaces: int = 1024):
        self._proc = proc
        self._refresh_s = refresh_s
        self._max_namespaces = max_namespaces
        self._pids: Dict[int, int] = {}
        self._listings: Dict[int, _Listing] = {}

    def inode(self, netns: int, local: bytes, lport: int, remote: bytes, rport: int) -> int:
        """The inode of the socket the packet belongs to; 0 if none is found."""
        listing = self._listings.get(netns)
        if listing is None:
            if len(self._listings) >= self._max_namespaces:
                self._listings.clear()
            listing = self._listings[netns] = _Listing()
        found = self._match(listing, local, lport, remote, rport)
        if found or time.monotonic() - listing.read_at < self._refresh_s:
            return found
        self._read(netns, listing)
        return self._match(listing, local, lport, remote, rport)

    @staticmethod
    def _match(listing: _Listing, local: bytes, lport: int, remote: bytes, rport: int) -> int:
        return (listing.exact.get((local, lport, remote, rport))
                or listing.listening.get((local, lport))
                or listing.listening.get((_ANY, lport))
                or 0)

    def _read(self, netns: int, listing: _Listing) -> None:
        listing.read_at = time.monotonic()
        pid = self._pid_in(netns)
        if pid is None:
            return
        exact: Dict[Tuple4, int] = {}
        listening: Dict[Tuple[bytes, int], int] = {}
        for name in ("tcp", "tcp6"):
            try:
                with open(f"{self._proc}/{pid}/net/{name}", encoding="ascii") as table:
                    next(table, None)
                    for row in table:
                        fields = row.split()
                        local, lport = fields[1].split(":")
                        remote, rport = fields[2].split(":")
                        ino = int(fields[9])
                        if not ino:
                            continue
                        if int(fields[3], 16) == _TCP_LISTEN:
                            listening[(_address(local), int(lport, 16))] = ino
                        else:
                            exact[(_address(local), int(lport, 16), _address(remote),
                                   int(rport, 16))] = ino
            except (OSError, ValueError, IndexError):
                self._pids.pop(netns, None)
                continue
        listing.exact, listing.listening = exact, listening

    def _pid_in(self, netns: int) -> Optional[int]:
        """A process in the namespace: the one found before, if it still is."""
        pid = self._pids.get(netns)
        if pid is not None and self._netns_of(pid) == netns:
            return pid
        self._pids.pop(netns, None)
        try:
            entries = os.listdir(self._proc)
        except OSError:
            return None
        for entry in entries:
            if entry.isdigit() and self._netns_of(int(entry)) == netns:
                if len(self._pids) >= self._max_namespaces:
                    self._pids.clear()
                self._pids[netns] = int(entry)
                return int(entry)
        return None

    def _netns_of(self, pid: int) -> Optional[int]:
        try:
            return os.stat(f"{self._proc}/{pid}/ns/net").st_ino
        except OSError:
            return None
