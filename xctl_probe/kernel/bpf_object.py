"""One BPF object file through libbpf: opened, adjusted before load, loaded,
closed; every libbpf failure turned into the ProbeError that says what to do,
and the verifier's log of a program the kernel refused kept (verifier_log.py).

libbpf, through the cffi binding, relocates every field access of the object
against this kernel's BTF at load, so one object built elsewhere serves any
kernel with BTF.
"""

import errno
import os
from pathlib import Path
from typing import FrozenSet, Iterator, Optional

from ..errors import BadInstall, KernelUnsupported, NoPrivilege, ProbeError
from . import libbpf_log, verifier_log
from .binding import ffi, lib


class BpfObject:
    """The libbpf object; ``close()`` unloads whatever of it was loaded."""

    def __init__(self, object_path: Path, btf_path: Path):
        """``btf_path``: the BTF that CO-RE relocates against, named even
        when it is the running kernel's /sys/kernel/btf/vmlinux. A relocation
        that finds no candidate type in vmlinux (one that tests whether a
        type exists: trace_event_raw_tcp_retransmit_skb before 6.17) sends
        libbpf to the kernel modules' BTF, unless this path was given
        (bpf_core_find_cands: "if vmlinux BTF was overridden, don't attempt
        to load module BTFs"). Walking those takes BPF_BTF_GET_NEXT_ID and
        BPF_BTF_GET_FD_BY_ID, which the kernel grants only with
        CAP_SYS_ADMIN (6.1, 6.12 and 6.18 alike), and libbpf 1.1 fails the
        whole load on that EPERM ("failed to iterate BTF objects"): as the
        unit runs it, with CAP_BPF and CAP_PERFMON, the probe would not
        start before 6.17. Its types are all the core kernel's, and so are
        its hooks: libbpf looks up a tp_btf or iter target in vmlinux first
        and walks the modules only for one vmlinux lacks."""
        opts = ffi.new("struct bpf_object_open_opts *")
        opts.sz = ffi.sizeof("struct bpf_object_open_opts")
        # Owned here until the call returns; libbpf copies the string.
        btf_path_c = ffi.new("char[]", os.fsencode(btf_path))
        opts.btf_custom_path = btf_path_c
        libbpf_log.reset()
        self._obj = lib.bpf_object__open_file(os.fsencode(object_path), opts)
        if self._obj == ffi.NULL:
            raise BadInstall(
                f"cannot open BPF object {object_path}: {os.strerror(ffi.errno)}"
                f"{libbpf_log.says()}; reinstall the package (make install)"
            )

    def map(self, name: str):
        bpf_map = lib.bpf_object__find_map_by_name(self._obj, name.encode())
        if bpf_map == ffi.NULL:
            raise BadInstall(f"BPF object has no map {name}; reinstall the package")
        return bpf_map

    def map_fd(self, name: str) -> int:
        return lib.bpf_map__fd(self.map(name))

    def program(self, name: str):
        prog = lib.bpf_object__find_program_by_name(self._obj, name.encode())
        if prog == ffi.NULL:
            raise BadInstall(f"BPF object has no program {name}; reinstall the package")
        return prog

    def programs(self) -> Iterator:
        prog = lib.bpf_object__next_program(self._obj, ffi.NULL)
        while prog != ffi.NULL:
            yield prog
            prog = lib.bpf_object__next_program(self._obj, prog)

    def size_ring(self, name: str, ring_bytes: int) -> None:
        """A ring buffer's size is a power of two of pages, fixed before load."""
        err = -lib.bpf_map__set_max_entries(self.map(name), ring_bytes)
        if err:
            raise ProbeError(f"cannot size the ring buffer to {ring_bytes} bytes: "
                             f"{os.strerror(err)}")

    def set_initial_value(self, name: str, data: bytes) -> None:
        """The contents of the global-data map ``name`` (a section such as
        .rodata.drops), before load; all of it, at its exact size."""
        err = -lib.bpf_map__set_initial_value(self.map(name), data, len(data))
        if err:
            raise BadInstall(f"cannot set the BPF object's {name} ({len(data)} bytes): "
                             f"{os.strerror(err)}; reinstall the package")

    def leave_out(self, name: str) -> None:
        """Keeps the program ``name`` from being loaded (and so attached)."""
        lib.bpf_program__set_autoload(self.program(name), False)

    def load(self, tolerated: FrozenSet[str] = frozenset()) -> Optional[str]:
        """None once loaded; the helper of ``tolerated`` the kernel refused a
        program for, if it did, which the caller can do without (nothing is
        loaded then). Any other failure raises."""
        libbpf_log.reset()
        err = -lib.bpf_object__load(self._obj)
        if err:
            # libbpf loads without a verifier's log (it costs the kernel time),
            # and a program the kernel refuses again with one: no cost unless it fails.
            log = libbpf_log.load_log()
            helper = libbpf_log.unknown_helper(log)
            if helper in tolerated:
                return helper
            raise _load_failure(err, libbpf_log.says(), verifier_log.keep(log))
        return None

    def shrink_map(self, name: str, entries: int) -> None:
        """Fewer entries for a map the programs will not use on this kernel."""
        err = -lib.bpf_map__set_max_entries(self.map(name), entries)
        if err:
            raise BadInstall(f"cannot resize the BPF object's map {name}: {os.strerror(err)}; "
                             "reinstall the package")

    def close(self) -> None:
        if self._obj != ffi.NULL:
            lib.bpf_object__close(self._obj)
            self._obj = ffi.NULL


def _load_failure(err: int, says: str, kept: verifier_log.Kept) -> ProbeError:
    if err == errno.EPERM and "RLIMIT_MEMLOCK" in says:
        return NoPrivilege(
            f"the kernel refused to load BPF programs: {os.strerror(err)}{says}; before Linux "
            "5.11 they count against the locked-memory limit: raise it (ulimit -l unlimited; "
            f"LimitMEMLOCK=infinity in a unit){kept.said}", kept.tail)
    if err == errno.EPERM:
        return NoPrivilege(
            f"the kernel refused to load BPF programs: {os.strerror(err)}{says}; run as root, "
            f"or check kernel.unprivileged_bpf_disabled and any LSM policy{kept.said}",
            kept.tail)
    if err == errno.ESRCH:
        return KernelUnsupported(
            f"this kernel lacks a tracepoint the probe attaches to{says}; "
            f"it needs Linux 5.10 or later with BTF{kept.said}", kept.tail)
    return KernelUnsupported(
        f"the kernel rejected the BPF object: {os.strerror(err)}{says}{kept.said}", kept.tail)
