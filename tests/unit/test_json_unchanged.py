"""What xctl reads is what it read before the table, top, filters, rollups and
metrics: with stdout a pipe and no options, the same records give the same
bytes through the line path as the stream builds it (streaming.format_for
and output_for, the filters' keep, the line thread) as through the plain
definition of JSONL (msgspec's encoding of each line the line maker makes,
a newline after each); and with the other build of that path, the one with
--format json asked for and the metrics' tap on, the same bytes again."""

import fcntl
import os
import re
import socket
import threading
import time
from pathlib import Path

import msgspec

from xctl_probe.commands.streaming import StreamSettings, format_for, output_for
from xctl_probe.kernel.decoder import FLAG_HISTORY, SOURCE_CLOSE, SOURCE_DROP, SOURCE_SYNACK
from xctl_probe.output.handover import Batches
from xctl_probe.output.line_thread import LineThread
from xctl_probe.output.metrics import StreamMetrics

from lab.records import (CA_LOSS, CA_RECOVERY, ESTABLISHED, FIN_WAIT1, SECOND, TCPHDR_ACK,
                         TCPHDR_SYN, maker, record)

F_SETPIPE_SZ = 1031
# Room for every byte the storm makes: no write ever waits for the reader, so
# neither build merges a line (a merge is right behind a slow reader, and
# would make the bytes differ for a reason that is not the build's).
PIPE_BYTES = 1 << 20
BATCH = 64
# Every line starts with its time, the one field the wall clock sets: the
# line thread takes its offset from the kernel's clock per batch, when the
# batch comes. Both sides of a comparison have it set to 0 (the rest of every
# line is compared byte for byte), and it is checked on its own.
TS = re.compile(rb'^\{"ts":(\d+),', re.M)


def storm() -> bytes:
    """Records of every source on IPv4 and IPv6 flows: new flows, their
    later records, failed retransmissions, drops, SYN-ACKs, closes."""
    records = []
    for i in range(1200):
        flow = i % 24
        family = socket.AF_INET6 if flow % 3 == 0 else socket.AF_INET
        addresses = ({"saddr": socket.inet_pton(socket.AF_INET6, f"fd00::{flow + 1}"),
                      "daddr": socket.inet_pton(socket.AF_INET6, "fd00::ff")}
                     if family == socket.AF_INET6 else {})
        common = dict(ts_ns=SECOND + i * 1_000_000, cookie=5000 + flow, family=family,
                      sport=40000 + flow, dport=9000, **addresses)
        step = i // 24
        if i % 97 == 0:
            records.append(record(**common, source=SOURCE_DROP, reason=5, retrans=0, sent=0))
        elif i % 89 == 0:
            records.append(record(**common, source=SOURCE_SYNACK, tcp_flags=TCPHDR_SYN | TCPHDR_ACK,
                                  retrans=step + 1, sent=step + 2))
        else:
            records.append(record(
                **common, retrans=step + 2, prev_retrans=step + 1, sent=100 * (step + 1),
                flags=FLAG_HISTORY, ca_state=CA_LOSS if i % 5 == 0 else CA_RECOVERY,
                err=-105 if i % 31 == 0 else 0, rto=50 + step, backoff=step % 3,
                state=FIN_WAIT1 if i % 7 == 0 else ESTABLISHED, srtt_us=1000 + i))
    records += [record(ts_ns=30 * SECOND, cookie=5000 + flow, sport=40000 + flow,
                       source=SOURCE_CLOSE, retrans=99, prev_retrans=60, flags=FLAG_HISTORY,
                       tcp_flags=0, state=7) for flow in range(0, 24, 4)]
    return b"".join(records)


def through_the_stream(raw: bytes, proc: Path, settings: StreamSettings, taps=()) -> bytes:
    """``raw`` in batches through the line thread to the sink the stream
    would write to stdout with, stdout a pipe; what the pipe's reader got."""
    read_end, write_end = os.pipe()
    fcntl.fcntl(write_end, F_SETPIPE_SZ, PIPE_BYTES)
    got = []
    reader = threading.Thread(target=lambda: got.extend(iter(lambda: os.read(read_end, 1 << 16),
                                                             b"")))
    reader.start()
    sink, _ = output_for(None, settings, out_fd=write_end)
    batches = Batches()
    lines = LineThread(maker(proc), batches, lambda: b"", sink, lambda: 0,
                       settings.filters.keep(), taps)
    lines.start()
    size = len(record())
    for start in range(0, len(raw), BATCH * size):
        batches.put(raw[start:start + BATCH * size])
    batches.close()
    assert lines.join(30)
    lines.check()
    assert sink.close(30) == 0
    os.close(write_end)
    reader.join(30)
    os.close(read_end)
    return b"".join(got)


def without_ts(jsonl: bytes) -> bytes:
    return TS.sub(b'{"ts":0,', jsonl)


def test_a_pipe_without_options_gets_the_same_bytes_through_both_builds(tmp_path):
    raw = storm()
    read_end, write_end = os.pipe()
    try:
        asked = format_for(None, write_end)
    finally:
        os.close(read_end)
        os.close(write_end)
    assert asked == "json"
    plain = StreamSettings(Path("unused"), 1024, 10.0, [], format=asked)
    before_ns = time.time_ns() - time.monotonic_ns()
    written = through_the_stream(raw, tmp_path, plain)
    after_ns = time.time_ns() - time.monotonic_ns()
    lines = maker(tmp_path).lines(raw, 0)
    reference = b"".join(msgspec.json.encode(line) + b"\n" for line in lines)
    print(f"{len(raw) // len(record())} records, {len(lines)} lines, {len(written)} bytes")
    assert len(lines) > 1000 and without_ts(written) == without_ts(reference)
    # The times: each the record's, on the wall clock, to the millisecond.
    for line, ts in zip(lines, TS.findall(written)):
        assert (line.ts * 1_000_000 + before_ns - 1_000_000) // 1_000_000 <= int(ts)
        assert int(ts) <= (line.ts * 1_000_000 + after_ns + 1_000_000) // 1_000_000
    metrics = StreamMetrics({"version": "0", "kernel": "0", "layout": "0", "sockets": "0"})
    other = StreamSettings(Path("unused"), 1024, 10.0, [], format=format_for("json"))
    assert without_ts(through_the_stream(raw, tmp_path, other, taps=(metrics.tap,))) == \
        without_ts(written)
