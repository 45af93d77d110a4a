"""The table's rows, without a kernel: synthetic lines formatted as the
writer thread formats them, checked cell by cell: widths that never wrap,
columns that go least important first, IPv6 shortened in the middle,
colour through rich and none with NO_COLOR, text from other processes made
harmless, the header, merged rows and lost records; and the writer with the
table's form: rows made on its thread, merged behind a terminal that stalls."""

import io
import os
import re
import select
import threading
import time

import pytest
from rich.cells import cell_len
from rich.console import Console

from xctl_probe.meaning.event import TransportDrop
from xctl_probe.output.writer import BEHIND_S, LineWriter
from xctl_probe.terminal import cells, table
from xctl_probe.terminal.columns import COLUMNS, GAP, IMPORTANCE, fit
from xctl_probe.terminal.styles import Palette
from xctl_probe.terminal.table import TableRows

ESCAPE = re.compile(r"\x1b\[[0-9;]*m")
V6_LOCAL = "fd00:1234:5678:9abc:def0:1234:5678:9abc"
V6_REMOTE = "2001:db8:aaaa:bbbb:cccc:dddd:eeee:ffff"


def line(**fields) -> TransportDrop:
    values = dict(ts=1_700_000_000_123, event_type="transport.drop", value="18.18",
                  family="ipv4", saddr="10.0.0.5", daddr="10.0.0.9", sport=49528, dport=9000,
                  segs=1, err=0, netns=4026531840, pid=4242, comm="trainer", job_id="981234",
                  state="ESTABLISHED", kind="fast", rto_ms=204, backoff=0, stalled_ms=28)
    values.update(fields)
    values["entity_id"] = "network-{saddr}-{daddr}-{sport}-{dport}".format(**values)
    return TransportDrop(**values)


def variety():
    """Lines of every shape a row must fit: IPv4 and long IPv6, a drop, a
    merged flood, a failed retransmission, a stuck flow, comms that are
    hostile or wide."""
    return [
        line(),
        line(family="ipv6", saddr=V6_LOCAL, daddr=V6_REMOTE, sport=443, dport=51234,
             job_id="0f8fad5b-d9cb-469f-a165-70867728950e"),
        line(kind="drop", reason="NETFILTER_DROP", value="12", state=None, rto_ms=None,
             backoff=None, stalled_ms=None, daddr="0.0.0.0", dport=0, pid=None, comm=None,
             segs=731, count=731),
        line(err=-105, err_name="ENOBUFS"),
        line(kind="rto", rto_ms=1632, backoff=3, stalled_ms=3156, value="33.3"),
        line(comm="x\x1b]0;owned\x07y\u202e", job_id="job\x1b[2J"),
        line(comm="训练进程", pid=4194304),
    ]


def plain_console() -> Console:
    return Console(file=io.StringIO())


def rows(lines, width=200, height=None, lost=0, console=None):
    form = TableRows(Palette(console or plain_console()), lambda: (width, height), 10.0)
    return form.late((lines, lost)).decode()


def cells_of(row: str, width=None):
    """A row's cells by the layout's widths, stripped."""
    found, at = {}, 0
    for column, size in fit(width):
        found[column.key] = row[at:at + size].strip()
        at += size + len(GAP)
    return found


@pytest.mark.parametrize("width", [200, 160, 120, 100, 80, 60, 40, 25, 8, 1])
def test_no_row_is_wider_than_the_terminal(width):
    text = rows(variety(), width, lost=7, console=Console(force_terminal=True, file=io.StringIO()))
    assert ESCAPE.search(text)
    for row in ESCAPE.sub("", text).splitlines():
        assert cell_len(row) <= width, row


def test_columns_go_least_important_first_and_the_flow_last():
    assert [c.key for c, _ in fit(None)] == [c.key for c in COLUMNS]
    assert [c.key for c, _ in fit(200)] == [c.key for c in COLUMNS]
    previous = set(IMPORTANCE)
    for width in range(200, 0, -1):
        shown = {c.key for c, _ in fit(width)}
        # What shows is always the most important ones, fewer as it narrows.
        assert shown == set(IMPORTANCE[:len(shown)]) and shown <= previous, width
        previous = shown
    # What an SRE reads first still shows on an 80-column terminal.
    assert {"time", "owner", "flow", "kind", "segs", "rate"} <= {c.key for c, _ in fit(80)}
    assert [c.key for c, _ in fit(5)] == ["flow"]


def test_an_ipv6_flow_is_shortened_in_the_middle_of_its_addresses_keeping_the_ports():
    v6 = line(family="ipv6", saddr=V6_LOCAL, daddr=V6_REMOTE, sport=443, dport=51234)
    full = f"[{V6_LOCAL}]:443 → [{V6_REMOTE}]:51234"
    # Without a terminal nothing is cut: the row shifts instead.
    assert full in rows([v6], None)
    flow = cells_of(rows([v6], 120).splitlines()[1], 120)["flow"]
    local, remote = flow.split(" → ")
    assert len(flow) < len(full)
    assert local.startswith("[fd00:") and local.endswith("9abc]:443") and "…" in local
    assert remote.startswith("[2001:") and remote.endswith("ffff]:51234") and "…" in remote
    # A short one is left whole.
    assert cells.flow("[::1]:443", "[::1]:51234", 40) == "[::1]:443 → [::1]:51234"


def test_no_colour_when_no_color_is_set_or_stdout_is_no_terminal(monkeypatch):
    monkeypatch.delenv("NO_COLOR", raising=False)
    coloured = rows(variety(), console=Console(force_terminal=True, file=io.StringIO()))
    assert "\x1b[" in coloured
    monkeypatch.setenv("NO_COLOR", "1")
    assert "\x1b" not in rows(variety(), console=Console(force_terminal=True, file=io.StringIO()))
    monkeypatch.delenv("NO_COLOR")
    assert "\x1b" not in rows(variety(), console=Console(file=io.StringIO()))


def test_what_a_process_names_itself_cannot_act_on_the_terminal():
    text = rows(variety(), 200)
    assert not re.search(r"[\x00-\x09\x0b-\x1f\x7f\u202e]", text), repr(text)
    hostile = cells_of(text.splitlines()[6], 200)
    assert hostile["owner"] == "4242/x?]0;owned?y?" and hostile["job"] == "job?[2J"


def test_a_wide_comm_is_cut_in_cells_not_characters():
    row = rows([line(comm="训练进程训练进程", pid=4194304)], 80).splitlines()[1]
    owner = cells_of(row, 80)["owner"]
    assert owner.startswith("4194304/训") and owner.endswith("…")
    assert cell_len(row) <= 80


def test_each_cell_says_what_the_line_says():
    text = rows(variety(), 200).splitlines()
    header = cells_of(text[0], 200)
    assert header == {c.key: c.header for c in COLUMNS}
    first, drop, failed, stuck = (cells_of(text[i], 200) for i in (1, 3, 4, 5))
    assert first == {"time": time.strftime("%H:%M:%S", time.localtime(1_700_000_000)) + ".123",
                     "owner": "4242/trainer", "job": "981234",
                     "flow": "10.0.0.5:49528 → 10.0.0.9:9000", "state": "ESTABLISHED",
                     "kind": "fast", "segs": "1", "recs": "", "rate": "18.18%",
                     "timers": "204ms 28ms"}
    # A flood's drops the kernel counted: its reason, the packets, the records, over the window.
    assert (drop["owner"], drop["state"], drop["kind"], drop["segs"], drop["recs"],
            drop["rate"], drop["timers"]) == ("-", "-", "NETFILTER_DROP", "731", "731",
                                              "12/10s", "")
    assert failed["kind"] == "fast ENOBUFS"
    assert stuck["timers"] == "1.6s×3 3.2s"


def test_timers_read_rto_backoff_and_stalled():
    assert cells.timers(408, 3, 2100) == "408ms×3 2.1s"
    assert cells.timers(204, 0, 28) == "204ms 28ms"
    assert cells.timers(120_000, 9, 700_000) == "120s×9 11m"
    assert cells.timers(None, 2, None) == "×2"
    assert cells.timers(204, 0, None) == "204ms"
    assert cells.timers(None, None, None) == ""


def test_a_header_every_screenful_and_when_the_width_changes():
    size = [120, 10]
    form = TableRows(Palette(plain_console()), lambda: tuple(size), 10.0)
    text = form.late(([line()] * 25, 0)).decode().splitlines()
    headers = [i for i, row in enumerate(text) if row.startswith("TIME ")]
    assert headers == [0, 10, 20] and len(text) == 28
    # Within the screenful, no header; a new width, a new header at once.
    assert not form.late(([line()], 0)).decode().startswith("TIME ")
    size[0] = 80
    text = form.late(([line()], 0)).decode().splitlines()
    assert text[0].startswith("TIME ") and "STATE" not in text[0]


def test_records_lost_are_said_once_they_grow(monkeypatch):
    monkeypatch.setattr(table, "LOST_EVERY_S", 0.0)
    form = TableRows(Palette(plain_console()), lambda: (200, None), 10.0)
    assert "lost" not in form.late(([line()], 0)).decode()
    said = form.late(([line()], 5)).decode().splitlines()
    assert said[0].startswith("5 records lost so far") and re.match(r"\d\d:", said[1])
    assert "lost" not in form.late(([line()], 5)).decode()
    assert "7 records lost so far" in form.late(([], 7)).decode()


class StalledTerminal(TableRows):
    """The table's form whose first batch waits until released, as behind a
    terminal that stopped reading; it notes the thread every batch is made on."""

    def __init__(self):
        super().__init__(Palette(plain_console()), lambda: (None, None), 10.0)
        self.threads = set()
        self.entered = threading.Event()
        self.release = threading.Event()

    def late(self, prepared):
        self.threads.add(threading.current_thread().name)
        if not self.entered.is_set():
            self.entered.set()
            assert self.release.wait(30)
        return super().late(prepared)


def read_rows(fd, until, timeout_s=30.0):
    data, deadline = b"", time.monotonic() + timeout_s
    while not until(data.decode().splitlines()):
        left = deadline - time.monotonic()
        assert left > 0 and select.select([fd], [], [], left)[0]
        data += os.read(fd, 1 << 20)
    return data.decode().splitlines()


def test_rows_are_made_on_the_writer_thread_and_merge_behind_a_terminal_that_stalls():
    read_end, write_end = os.pipe()
    form = StalledTerminal()
    writer = LineWriter(write_end, form=form)
    writer.put([line(sport=1)], 0)
    assert form.entered.wait(10)
    time.sleep(BEHIND_S * 3)  # the writer is behind: past BEHIND_S on one batch
    for i in range(300):
        writer.put([line(sport=50000 + i % 3, segs=2)], 0)
    form.release.set()

    def merged(text):
        return [cells_of(row) for row in text if ":5000" in row]

    text = read_rows(read_end, lambda text: len(merged(text)) == 3)
    assert [(c["flow"], c["segs"], c["recs"]) for c in merged(text)] == [
        (f"10.0.0.5:{50000 + i} → 10.0.0.9:9000", "200", "100") for i in range(3)]
    assert form.threads == {"xctl-probe-writer"}
    assert writer.close(1.0) == 0 and writer.lines == 1 + 3
    os.close(read_end)
    os.close(write_end)
