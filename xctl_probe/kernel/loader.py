"""Loads the CO-RE object into the running kernel and attaches its programs.

libbpf, through the cffi binding, relocates every field access of the object
against this kernel's BTF, so one object built elsewhere serves any kernel
with BTF. Every way this can fail becomes a ProbeError whose message says what
to do; nothing is left attached when it does.
"""

import errno
import os
import time
from pathlib import Path
from typing import List, Optional

from ..errors import BadInstall, KernelUnsupported, NoBTF, NoPrivilege, ProbeError
from . import capabilities, ticks
from .binding import ffi, lib
from .objects import PROBE_OBJECT

KERNEL_BTF = Path("/sys/kernel/btf/vmlinux")

RING_MAP = "records"
# Room for about 9,000 records: a reader stalled for a second in a storm of
# that many retransmissions a second loses none.
DEFAULT_RING_BYTES = 1 << 20
LOST_MAP = "lost_records"
LAYOUT_PROGRAM = "xp_report_layout"
JIFFIES_PROGRAM = "xp_report_jiffies"
# Run through BPF_PROG_TEST_RUN at load, never on an event.
LOAD_TIME_PROGRAMS = (LAYOUT_PROGRAM, JIFFIES_PROGRAM)

# tp_btf sections name a tracepoint without its category, which people know it by.
TRACEPOINTS = {
    "tcp_retransmit_skb": "tcp:tcp_retransmit_skb",
    "tcp_retransmit_synack": "tcp:tcp_retransmit_synack",
    "tcp_destroy_sock": "tcp:tcp_destroy_sock",
    "inet_sock_set_state": "sock:inet_sock_set_state",
    "kfree_skb": "skb:kfree_skb",
}
DROP_PROGRAM = "xp_kfree_skb"

def check_privileges() -> None:
    if capabilities.can_load(capabilities.effective()):
        return
    raise NoPrivilege(
        "loading BPF programs needs root, or CAP_BPF and CAP_PERFMON "
        "(uid %d has neither); run it as root or grant those capabilities" % os.geteuid()
    )


def check_kernel_btf() -> None:
    if not KERNEL_BTF.is_file():
        raise NoBTF(
            f"this kernel exposes no BTF ({KERNEL_BTF} is missing); the probe needs a "
            "kernel built with CONFIG_DEBUG_INFO_BTF=y (most distributions since 2020)"
        )


def _libbpf_says() -> str:
    """libbpf's first warning since the last reset, the root cause of a failure."""
    message = ffi.string(lib.xp_first_libbpf_message()).decode(errors="replace")
    message = message.removeprefix("libbpf: ")
    return f" (libbpf: {message})" if message else ""


class LoadedProbe:
    """The object loaded and attached; ``close()`` (or ``with``) removes it all."""

    def __init__(self, object_path: Path = PROBE_OBJECT, btf_path: Optional[Path] = None,
                 ring_bytes: int = DEFAULT_RING_BYTES, attach: bool = True, drops: bool = True):
        if not Path(object_path).is_file():
            raise BadInstall(
                f"BPF object {object_path} not found; reinstall the package (make install) "
                "or pass the right --object"
            )
        check_privileges()
        check_kernel_btf()

        self._obj = ffi.NULL
        self._lost_fd = -1
        self._links: List = []
        self.attached: List[str] = []
        try:
            self._open(Path(object_path), btf_path)
            self._size_ring(ring_bytes)
            if not drops:
                self._leave_out(DROP_PROGRAM)
            self._load()
            self._lost_fd = self.map_fd(LOST_MAP)
            self.err_layout = self._report_layout()
            self.hz, self.hz_source = ticks.kernel_hz(self.read_jiffies)
            if attach:
                self._attach()
        except BaseException:
            self.close()
            raise

    def _open(self, object_path: Path, btf_path: Optional[Path]) -> None:
        opts = ffi.new("struct bpf_object_open_opts *")
        opts.sz = ffi.sizeof("struct bpf_object_open_opts")
        # Owned here until the call returns; libbpf copies the string.
        btf_path_c = ffi.new("char[]", os.fsencode(btf_path)) if btf_path else ffi.NULL
        opts.btf_custom_path = btf_path_c
        lib.xp_reset_libbpf_log()
        self._obj = lib.bpf_object__open_file(os.fsencode(object_path), opts)
        if self._obj == ffi.NULL:
            raise BadInstall(
                f"cannot open BPF object {object_path}: {os.strerror(ffi.errno)}"
                f"{_libbpf_says()}; reinstall the package (make install)"
            )

    def _size_ring(self, ring_bytes: int) -> None:
        """A ring buffer's size is a power of two of pages, fixed before load."""
        ring = lib.bpf_object__find_map_by_name(self._obj, RING_MAP.encode())
        if ring == ffi.NULL:
            raise BadInstall(f"BPF object has no map {RING_MAP}; reinstall the package")
        err = -lib.bpf_map__set_max_entries(ring, ring_bytes)
        if err:
            raise ProbeError(f"cannot size the ring buffer to {ring_bytes} bytes: "
                             f"{os.strerror(err)}")

    def _leave_out(self, name: str) -> None:
        prog = lib.bpf_object__find_program_by_name(self._obj, name.encode())
        if prog == ffi.NULL:
            raise BadInstall(f"BPF object has no program {name}; reinstall the package")
        lib.bpf_program__set_autoload(prog, False)

    def _load(self) -> None:
        lib.xp_reset_libbpf_log()
        err = -lib.bpf_object__load(self._obj)
        if err == 0:
            return
        if err == errno.EPERM:
            raise NoPrivilege(
                f"the kernel refused to load BPF programs: {os.strerror(err)}{_libbpf_says()}; "
                "run as root, or check kernel.unprivileged_bpf_disabled and any LSM policy"
            )
        if err == errno.ESRCH:
            raise KernelUnsupported(
                f"this kernel lacks a tracepoint the probe attaches to{_libbpf_says()}; "
                "it needs Linux 5.12 or later with BTF"
            )
        raise KernelUnsupported(
            f"the kernel rejected the BPF object: {os.strerror(err)}{_libbpf_says()}"
        )

    def _programs(self):
        prog = lib.bpf_object__next_program(self._obj, ffi.NULL)
        while prog != ffi.NULL:
            yield prog
            prog = lib.bpf_object__next_program(self._obj, prog)

    @property
    def hooks(self) -> List[str]:
        """The tracepoints the object's programs attach to, as category:name."""
        return [TRACEPOINTS.get(section[len("tp_btf/"):], section[len("tp_btf/"):])
                for _, section in self._tracing_programs()]

    def _tracing_programs(self):
        for prog in self._programs():
            if not lib.bpf_program__autoload(prog):
                continue
            section = ffi.string(lib.bpf_program__section_name(prog)).decode()
            if section.startswith("tp_btf/"):
                yield prog, section

    def _attach(self) -> None:
        for prog, section in self._tracing_programs():
            lib.xp_reset_libbpf_log()
            link = lib.bpf_program__attach(prog)
            if link == ffi.NULL:
                raise KernelUnsupported(
                    f"cannot attach to tracepoint {section[len('tp_btf/'):]}: "
                    f"{os.strerror(ffi.errno)}{_libbpf_says()}"
                )
            self._links.append(link)
            self.attached.append(section)

    def _test_run(self, name: str, what: str) -> int:
        prog = lib.bpf_object__find_program_by_name(self._obj, name.encode())
        if prog == ffi.NULL:
            raise BadInstall(f"BPF object has no program {name}; reinstall the package")
        result = lib.xp_test_run(lib.bpf_program__fd(prog))
        if result < 0:
            raise KernelUnsupported(f"cannot run {what}: {os.strerror(-result)}{_libbpf_says()}")
        return result

    def _report_layout(self) -> bool:
        """Which tcp_retransmit_skb layout CO-RE chose, asked of the loaded object itself."""
        return bool(self._test_run(LAYOUT_PROGRAM, "the layout check"))

    def read_jiffies(self) -> ticks.Reading:
        """The kernel's jiffies (low bits) and the monotonic time they were read at."""
        before = time.monotonic_ns()
        jiffies = self._test_run(JIFFIES_PROGRAM, "the jiffies reading")
        return jiffies, (before + time.monotonic_ns()) // 2

    @property
    def layout(self) -> str:
        if self.err_layout:
            return "tcp_retransmit_skb(sk, skb, err), Linux 6.17+"
        return "tcp_retransmit_skb(sk, skb), before Linux 6.17"

    def map_fd(self, name: str) -> int:
        bpf_map = lib.bpf_object__find_map_by_name(self._obj, name.encode())
        if bpf_map == ffi.NULL:
            raise BadInstall(f"BPF object has no map {name}; reinstall the package")
        return lib.bpf_map__fd(bpf_map)

    def lost_records(self) -> int:
        """Records the BPF side could not put in a full ring buffer, since load."""
        key = ffi.new("uint32_t *", 0)
        value = ffi.new("uint64_t *")
        if lib.bpf_map_lookup_elem(self._lost_fd, key, value) != 0:
            return 0
        return value[0]

    def detach(self) -> None:
        """Stops new records; what the ring buffer holds can still be read."""
        while self._links:
            lib.bpf_link__destroy(self._links.pop())

    def close(self) -> None:
        self.detach()
        if self._obj != ffi.NULL:
            lib.bpf_object__close(self._obj)
            self._obj = ffi.NULL

    def __enter__(self) -> "LoadedProbe":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
