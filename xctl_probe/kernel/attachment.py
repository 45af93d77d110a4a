"""The object's tracing programs attached to their tracepoints, and detached.

Detaching stops new records at once while the ring buffer, a map of the
object, stays readable: a stop delivers what was already recorded.
"""

import os
from typing import Iterator, List, Tuple

from ..errors import KernelUnsupported
from . import libbpf_log
from .binding import ffi, lib
from .bpf_object import BpfObject

SECTION_PREFIX = "tp_btf/"
# tp_btf sections name a tracepoint without its category, which people know it by.
TRACEPOINTS = {
    "tcp_retransmit_skb": "tcp:tcp_retransmit_skb",
    "tcp_retransmit_synack": "tcp:tcp_retransmit_synack",
    "tcp_destroy_sock": "tcp:tcp_destroy_sock",
    "inet_sock_set_state": "sock:inet_sock_set_state",
    "kfree_skb": "skb:kfree_skb",
}


def _tracing_programs(obj: BpfObject) -> Iterator[Tuple[object, str]]:
    """The programs that will be loaded and attach to a tracepoint, with their section."""
    for prog in obj.programs():
        if not lib.bpf_program__autoload(prog):
            continue
        section = ffi.string(lib.bpf_program__section_name(prog)).decode()
        if section.startswith(SECTION_PREFIX):
            yield prog, section


def tracing_program_fds(obj: BpfObject) -> List[int]:
    """The descriptors of the loaded ``obj``'s programs that attach to a tracepoint."""
    return [lib.bpf_program__fd(prog) for prog, _ in _tracing_programs(obj)]


def hooks(obj: BpfObject) -> List[str]:
    """The tracepoints the object's programs attach to, as category:name."""
    names = (section[len(SECTION_PREFIX):] for _, section in _tracing_programs(obj))
    return [TRACEPOINTS.get(name, name) for name in names]


class Attachment:
    def __init__(self) -> None:
        self._links: List = []
        # The sections attached, in order.
        self.attached: List[str] = []

    def attach(self, obj: BpfObject) -> None:
        """Attaches every tracing program of the loaded ``obj``; on a failure,
        those attached stay so until ``detach()``."""
        for prog, section in _tracing_programs(obj):
            libbpf_log.reset()
            link = lib.bpf_program__attach(prog)
            if link == ffi.NULL:
                raise KernelUnsupported(
                    f"cannot attach to tracepoint {section[len(SECTION_PREFIX):]}: "
                    f"{os.strerror(ffi.errno)}{libbpf_log.says()}"
                )
            self._links.append(link)
            self.attached.append(section)

    def detach(self) -> None:
        while self._links:
            lib.bpf_link__destroy(self._links.pop())
