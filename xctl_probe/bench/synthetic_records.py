"""events_per_s and drain_per_s: synthetic records of the real layout,
written by bpf/bench.bpf.c (run in the kernel through BPF_PROG_TEST_RUN)
into the probe's own ring buffer, then taken through the probe's real path
to /dev/null (with --metrics' tap on the line thread, or not), and through a
C drain that only counts them. Only the user-space side is timed."""

import os
import socket
import struct
import time
from pathlib import Path
from typing import Dict, Iterator, Optional, Sequence, Tuple

from ..context.owners import Owners
from ..errors import BadInstall, KernelUnsupported, ProbeError
from ..kernel import libbpf_log
from ..kernel.binding import ffi, lib
from ..kernel.drop_reasons import DropReasons
from ..kernel.loader import RING_MAP, LoadedProbe
from ..kernel.objects import BENCH_OBJECT
from ..kernel.ringbuf import RECORD_SIZE, RingReader
from ..output.sink import Tap
from ..output.stream import Stream

BENCH_PROGRAM = "xp_bench_record"
# The synthetic drops' reason: a receiver out of buffer, a loss the probe reports.
DROP_REASON = "SOCKET_RCVBUFF"
# struct xp_bench_config in bpf/bench.bpf.c: ino, flows, netns, drops, reason.
_CONFIG = struct.Struct("=QIIIIII")
# Room for 139,000 records: the bench fills three quarters of it per round.
BENCH_RING_BYTES = 16 << 20
PER_ROUND = BENCH_RING_BYTES // (RECORD_SIZE + 8) * 3 // 4


class SyntheticRecords:
    """bpf/bench.bpf.c loaded against the probe's ring map."""

    def __init__(self, ring_map_fd: int):
        if not BENCH_OBJECT.is_file():
            raise BadInstall(f"BPF object {BENCH_OBJECT} not found; reinstall the package")
        self._obj = lib.bpf_object__open_file(os.fsencode(BENCH_OBJECT), ffi.NULL)
        if self._obj == ffi.NULL:
            raise BadInstall(f"cannot open {BENCH_OBJECT}: {os.strerror(ffi.errno)}; "
                             "reinstall the package")
        try:
            self._fd = self._load(ring_map_fd)
        except BaseException:
            self.close()
            raise

    def _load(self, ring_map_fd: int) -> int:
        ring = lib.bpf_object__find_map_by_name(self._obj, RING_MAP.encode())
        prog = lib.bpf_object__find_program_by_name(self._obj, BENCH_PROGRAM.encode())
        if ring == ffi.NULL or prog == ffi.NULL:
            raise BadInstall(f"{BENCH_OBJECT} lacks {RING_MAP} or {BENCH_PROGRAM}; "
                             "reinstall the package")
        libbpf_log.reset()
        err = -lib.bpf_map__reuse_fd(ring, ring_map_fd) or -lib.bpf_object__load(self._obj)
        if err:
            raise KernelUnsupported(f"cannot load the bench's BPF program: {os.strerror(err)}"
                                    f"{libbpf_log.says()}")
        return lib.bpf_program__fd(prog)

    def write(self, count: int, flows: int, ino: int, netns: int,
              drop_reason: Optional[int] = None) -> None:
        """``count`` records over ``flows`` flows: retransmissions, or with a
        ``drop_reason`` dropped packets."""
        config = _CONFIG.pack(ino, flows, netns, drop_reason is not None, drop_reason or 0,
                              os.getpid(), 0)
        result = lib.xp_test_run_data(self._fd, config, len(config), count)
        if result < 0:
            raise KernelUnsupported(f"cannot run the bench's BPF program: "
                                    f"{os.strerror(-result)}")

    def close(self) -> None:
        if self._obj != ffi.NULL:
            lib.bpf_object__close(self._obj)
            self._obj = ffi.NULL


def throughput(object_path: Path, records: int, flows: int,
               drops: Optional[DropReasons] = None, metrics: bool = False) -> Dict[str, float]:
    """events_per_s through the real path and drain_per_s through the C drain;
    with ``drops``, the kernel's reasons, of dropped packets; with ``metrics``,
    --metrics' tap counting every line (its server idle: a scrape reads
    counters, never the stream)."""
    reason = None if drops is None else drops.code(DROP_REASON)
    devnull = os.open(os.devnull, os.O_WRONLY)
    # The synthetic flows' socket: the probe looks its owner up, and finds the bench.
    owned = socket.socket()
    flow = (flows, os.fstat(owned.fileno()).st_ino, os.stat("/proc/self/ns/net").st_ino, reason)
    try:
        with LoadedProbe(object_path, ring_bytes=BENCH_RING_BYTES, attach=False) as probe:
            producer = SyntheticRecords(probe.map_fd(RING_MAP))
            taps = (_metrics_tap(),) if metrics else ()
            try:
                busy, lines = _through_stream(probe, _rounds(producer, records, flow),
                                              devnull, drops, taps)
                drain_busy, drained = _through_drain(probe, _rounds(producer, records, flow))
            finally:
                producer.close()
            lost = probe.lost_records()
    finally:
        owned.close()
        os.close(devnull)
    if lost or drained != records:
        raise ProbeError(f"bench: {lost} synthetic records found the ring full, "
                         f"{drained} of {records} drained; this is a bug, please report")
    return {"events_per_s": records / busy, "drain_per_s": records / drain_busy,
            "lines": lines}


def _rounds(producer: SyntheticRecords, records: int, flow: tuple) -> Iterator[None]:
    """Fills the ring with the next round of records before each step."""
    for done in range(0, records, PER_ROUND):
        producer.write(min(PER_ROUND, records - done), *flow)
        yield


def _metrics_tap() -> Tap:
    from ..output.metrics import StreamMetrics

    return StreamMetrics({"version": "bench"}).tap


def _through_stream(probe: LoadedProbe, rounds: Iterator[None], devnull: int,
                    drops: Optional[DropReasons], taps: Sequence[Tap] = ()
                    ) -> Tuple[float, int]:
    """(seconds the real path took, lines it wrote): this thread drains the
    ring as the stream's main thread does, while the stream's line thread and
    writer thread make and write the lines."""
    stream = Stream(probe, 10.0, Owners(probe.socket_holders), out_fd=devnull,
                    reasons=drops, taps=taps)
    busy = 0.0
    try:
        for _ in rounds:
            started = time.perf_counter()
            if not stream.drain(60) or not stream.wait_written(60):
                raise ProbeError("bench: the stream did not finish within 60 s")
            busy += time.perf_counter() - started
        return busy, stream.lines_written
    finally:
        stream.close(1.0)


def _through_drain(probe: LoadedProbe, rounds: Iterator[None]) -> Tuple[float, int]:
    """(seconds the C drain took, records it counted)."""
    counter = RingReader(probe.map_fd(RING_MAP))
    busy, drained = 0.0, 0
    try:
        for _ in rounds:
            started = time.perf_counter()
            drained += counter.count_all()
            busy += time.perf_counter() - started
        return busy, drained
    finally:
        counter.close()
