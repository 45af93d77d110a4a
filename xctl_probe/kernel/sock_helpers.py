"""Where the probe keeps what it knows of each socket, and what names a
socket to user space: the kernel's own answer, at load.

Tracing programs may keep state with the socket (socket-local storage,
Linux 5.11) and read its cookie (5.12) on newer kernels only; before, the
object keeps it in a hash of its own and makes ids of its own
(bpf/sock_state.bpf.h). A helper a kernel does not offer a program type is
one the verifier calls unknown, whatever the kernel's version says (vendors
backport such things): the object is loaded with the helpers first, and
again without them only when the verifier refused one of them.

XCTL_PROBE_SOCK_HELPERS=0 takes the older kernels' path on any kernel: the
tests prove it on this machine's kernel as well as on 5.10.
"""

import os

SECTION = ".rodata.sockets"
HASH_MAP = "sock_state_by_addr"
HELPERS = frozenset({"bpf_sk_storage_get", "bpf_get_socket_cookie"})
ENV = "XCTL_PROBE_SOCK_HELPERS"


def wanted() -> bool:
    """Whether to try the helpers first (unless XCTL_PROBE_SOCK_HELPERS=0)."""
    return os.environ.get(ENV, "1") != "0"


def packed(with_helpers: bool) -> bytes:
    """The section's contents: the object's sock_helpers constant."""
    return bytes([with_helpers])


def describe(with_helpers: bool) -> str:
    if with_helpers:
        return "socket state kept with each socket"
    return "socket state in a hash (before Linux 5.12)"
