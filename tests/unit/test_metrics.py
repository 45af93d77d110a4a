"""--metrics without a kernel probe: the tap's counts per label set on
synthetic lines, the job cap, the ring's fill read from the kernel's layout
of its positions (in a memfd laid out the same way), and the server: scraped
over real HTTP and parsed with the client library's parser; a taken port."""

import mmap
import os
import socket
import struct
import urllib.request

import msgspec
import pytest
from prometheus_client.openmetrics.parser import text_string_to_metric_families

from xctl_probe.commands.listen_address import listen_address
from xctl_probe.kernel.ring_fill import RingFill
from xctl_probe.output.metrics import MAX_JOBS, OTHER_JOB, StreamMetrics
from xctl_probe.output.metrics_server import MetricsUnserved, serve, stop_serving

from lab.records import line as record_line

INFO = {"version": "0.1.0", "kernel": "6.18", "layout": "(sk, skb, err)", "sockets": "local"}


@pytest.fixture
def line(tmp_path):
    def make(segs=1, kind=None, job=None, reason=None, loss=True):
        made = record_line(tmp_path, skb_segs=segs, retrans=1, sent=100)
        changes = {"job_id": job, "kind": kind}
        if kind == "drop":
            changes.update(reason=reason, reason_code=1, loss=None if loss else False)
        return msgspec.structs.replace(made, **changes)
    return make


def scrape(url):
    """The families a real HTTP client reads, parsed by the library's OpenMetrics parser."""
    request = urllib.request.Request(url, headers={"Accept": "application/openmetrics-text"})
    with urllib.request.urlopen(request, timeout=10) as response:
        assert response.headers["Content-Type"].startswith("application/openmetrics-text")
        text = response.read().decode()
    return {family.name: family for family in text_string_to_metric_families(text)}


def samples(families, name):
    """{labels as a sorted tuple: value} of the samples named ``name``."""
    return {tuple(sorted(s.labels.items())): s.value for family in families.values()
            for s in family.samples if s.name == name}


@pytest.fixture
def served():
    def start(metrics):
        server, url = serve(metrics.registry, "127.0.0.1", free_port())
        servers.append(server)
        return url
    servers = []
    yield start
    for server in servers:
        stop_serving(server)


def free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_segments_by_kind_and_job_drops_by_reason_loss_and_job(line, served):
    metrics = StreamMetrics(INFO)
    metrics.tap([line(2, "fast", "981"), line(1, "rto", "981"), line(3, "fast", "981"),
                 line(1, None, None), line(4, "fast", None)], 0)
    metrics.tap([line(1, "drop", "981", "NETFILTER_DROP"),
                 line(5, "drop", "981", "NETFILTER_DROP"),
                 line(1, "drop", None, "TCP_OFOMERGE", loss=False), line(1, "fast", "981")], 0)
    metrics.read_lost(lambda: 12)
    families = scrape(served(metrics))
    assert samples(families, "xctl_probe_retransmitted_segments_total") == {
        (("job", "981"), ("kind", "fast")): 6, (("job", "981"), ("kind", "rto")): 1,
        (("job", ""), ("kind", "unknown")): 1, (("job", ""), ("kind", "fast")): 4}
    assert samples(families, "xctl_probe_dropped_packets_total") == {
        (("job", "981"), ("loss", "true"), ("reason", "NETFILTER_DROP")): 6,
        (("job", ""), ("loss", "false"), ("reason", "TCP_OFOMERGE")): 1}
    assert samples(families, "xctl_probe_records_lost_total") == {(): 12}
    assert samples(families, "xctl_probe_info") == {tuple(sorted(INFO.items())): 1}
    # Only these label names, ever: no flow, pid or comm.
    assert {name for family in families.values() for s in family.samples
            for name in s.labels} <= {"kind", "job", "reason", "loss", *INFO}


def test_jobs_past_the_cap_are_counted_as_other(line, served):
    metrics = StreamMetrics(INFO, max_jobs=3)
    metrics.tap([line(1, "fast", f"job{i}") for i in range(10)], 0)
    metrics.tap([line(1, "fast", "job0"), line(1, "fast", "job9"),
                 line(1, "drop", "job8", "NETFILTER_DROP")], 0)
    counted = samples(scrape(served(metrics)), "xctl_probe_retransmitted_segments_total")
    assert counted == {(("job", "job0"), ("kind", "fast")): 2,
                       (("job", "job1"), ("kind", "fast")): 1,
                       (("job", "job2"), ("kind", "fast")): 1,
                       (("job", OTHER_JOB), ("kind", "fast")): 8}
    assert MAX_JOBS == 256


def test_a_silent_client_or_a_bad_request_neither_holds_the_server_nor_writes_to_stderr(
        served, capfd):
    url = served(StreamMetrics(INFO))
    host, port = url.split("/")[2].rsplit(":", 1)
    with socket.create_connection((host, int(port))) as silent, \
            socket.create_connection((host, int(port))) as bad:
        silent.sendall(b"GET /metr")
        bad.sendall(b"\x00\xff not http\r\n\r\n")
        # Served one at a time: this waits for the silent client's timeout,
        # and would wait for ever without one.
        assert "xctl_probe_records_lost" in scrape(url)
        assert b"400" in bad.recv(4096)
    assert capfd.readouterr() == ("", "")


def test_ring_fill_is_the_unread_bytes_over_the_size():
    """The kernel's layout: the consumer's position at 0, the producer's a page on."""
    page = mmap.PAGESIZE
    fd = os.memfd_create("ring")
    try:
        os.ftruncate(fd, 2 * page)
        fill = RingFill(fd, 64 * 1024)
        assert fill.fraction() == 0
        os.pwrite(fd, struct.pack("=Q", 1 << 40), 0)
        os.pwrite(fd, struct.pack("=Q", (1 << 40) + 16 * 1024), page)
        assert fill.fraction() == 0.25
        fill.close()
    finally:
        os.close(fd)


def test_a_taken_port_is_one_line_saying_so(served):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(MetricsUnserved) as raised:
            serve(StreamMetrics(INFO).registry, "127.0.0.1", port)
    said = str(raised.value)
    assert "\n" not in said and f"127.0.0.1:{port}" in said and "in use" in said
    assert "exits 7" in said and "another port" in said


@pytest.mark.parametrize("text, parsed", [
    ("127.0.0.1:9977", ("127.0.0.1", 9977)), ("[::1]:9977", ("::1", 9977)),
    (":9977", ("", 9977)), ("0.0.0.0:1", ("0.0.0.0", 1)), ("[::]:65535", ("::", 65535))])
def test_listen_addresses(text, parsed):
    assert tuple(listen_address(text)) == parsed


@pytest.mark.parametrize("text, says", [
    ("9977", "not ADDR:PORT"), ("localhost:9977", "not an IP address"),
    ("::1:9977", "in brackets"), ("[10.0.0.1]:9977", "in brackets"),
    ("10.0.0.1:0", "not a port"), ("10.0.0.1:65536", "not a port"),
    ("10.0.0.1:", "not a port"), ("10.0.0.1:+80", "not a port"), ("[]:9977", "no address")])
def test_bad_listen_addresses(text, says):
    with pytest.raises(ValueError, match=says):
        listen_address(text)
