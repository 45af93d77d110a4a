"""The table and top in a real terminal (tmux) under a loss storm, read from
the screen as a person reads them: the table's header, and rows naming the
storm's process and flow; top with the storm's flow first, sorting on ``s``,
and giving the terminal back on ``q`` and on Ctrl-C, as usable as before.

The probe sees every namespace, so other traffic on the machine may show
too: the storm is made the fastest retransmitter a test here makes (one
packet in twenty lost at a real link's MTU, well over a thousand segments a
second), and the screen is read until it shows what is asserted, within a
generous deadline; nothing is timed."""

import json
import re
import subprocess
import time
from dataclasses import dataclass
from typing import List

import pytest

from lab.accounting import check_segs
from lab.marks import requires_root
from lab.netns import Netns
from lab.probe import PROBE
from lab.terminal import Tmux

pytestmark = requires_root

PORT = 9475
# The storm whose rows are summed.
SUM_PORT = 9476
ESC = "\x1b["


@dataclass
class Storm:
    client_pid: int
    client_port: int
    server_pid: int

    @property
    def flow(self) -> str:
        """The client's flow, as a row shows it: local → remote."""
        return f"127.0.0.1:{self.client_port} → 127.0.0.1:{PORT}"

    @property
    def owner(self) -> str:
        return f"{self.client_pid}/xpt-client"


@pytest.fixture
def storm():
    """A client sending to a server in a namespace of the test's own, at MTU
    1500, one packet in twenty towards the server lost, until the test ends."""
    ns = Netns(mtu=1500)
    procs: List[subprocess.Popen] = []
    try:
        ns.drop_one_in(20, PORT)
        server = ns.spawn("--role", "server", "--port", str(PORT), "--seconds", "0",
                          "--name-hex", b"xpt-server".hex())
        procs.append(server)
        server_pid = json.loads(server.stdout.readline())["pid"]
        client = ns.spawn("--role", "client", "--port", str(PORT), "--seconds", "600",
                          "--name-hex", b"xpt-client".hex())
        procs.append(client)
        started = json.loads(client.stdout.readline())
        yield Storm(started["pid"], started["port"], server_pid)
    finally:
        for proc in reversed(procs):
            proc.kill()
            proc.wait()
        ns.close()


@pytest.fixture
def tmux():
    with Tmux(200, 50) as terminal:
        yield terminal


def rows_of(screen: str, flow: str) -> List[str]:
    """The rows of ``flow`` on the screen, but for the last line written,
    which the probe may still be writing."""
    lines = screen.rstrip("\n").splitlines()[:-1]
    return [line for line in lines if flow in line]


def header_of_table(screen: str):
    return next((line for line in screen.splitlines()
                 if re.match(r"TIME +PID/COMM +JOB +LOCAL → REMOTE +STATE +KIND +SEGS +RECS +"
                             r"RATE +RTO×BACKOFF STALLED", line)), None)


def exited(tmux: Tmux) -> str:
    """The exit status the shell printed after the probe, once it has."""
    return tmux.wait_for(lambda screen: re.search(r"^EXIT=(\d+)$", screen, re.M),
                         "exit status").group(1)


def test_table_rows_name_the_storms_process_and_flow(storm, tmux):
    tmux.type(f"env -u NO_COLOR {PROBE}; echo EXIT=$?")

    def shown(screen):
        rows = rows_of(screen, storm.flow)
        return header_of_table(screen) and [r for r in rows if storm.owner in r] and rows

    rows = tmux.wait_for(shown, "header and a row of the storm's flow naming its process")
    print(f"{len(rows)} rows of the storm's flow on the screen, e.g.\n{rows[0]}")
    # Never another owner: a row names the storm's client or, rarely, none.
    assert [r for r in rows if storm.owner not in r and not re.search(r"^\S+ +- ", r)] == []
    # Each row: time, the owner, no job, the flow, a state, a kind, segs, a rate in percent.
    pattern = (rf"^\d\d:\d\d:\d\d\.\d{{3}} +{storm.owner} +- +{re.escape(storm.flow)} +"
               r"[A-Z_0-9]+ +(rto|fast|tlp|noncongestion)\S* +\d+ +(\d+ +)?\d+(\.\d+)?% ")
    named = [r for r in rows if storm.owner in r]
    assert [r for r in named if not re.match(pattern, r)] == []
    # In colour: the owner is cyan.
    coloured = tmux.wait_for(lambda screen: rows_of(screen, storm.flow), "rows", escapes=True)
    assert any(f"{ESC}36m{storm.client_pid}/xpt-client" in row for row in coloured), coloured[0]

    tmux.key("C-c")
    assert exited(tmux) == "0"
    assert re.search(r"xctl-probe-ebpf: stopped after \d+ lines from \d+ records; "
                     r"\d+ records lost$",
                     tmux.screen(), re.M)


def column(header: str, name: str, right: bool = False) -> slice:
    """Where a column of the table's rows is, from the header: they are
    fixed-width, one space apart."""
    start = header.index(name)
    if right:  # right-aligned: its cells end where its title ends
        end = start + len(name)
        return slice(header.rindex(" ", 0, start) + 1, end)
    following = re.search(r"\S", header[start + len(name):])
    return slice(start, start + len(name) + (following.start() if following else 0))


def test_table_rows_add_up_to_the_kernels_count(tmux):
    """Every retransmitted segment of a storm in the SEGS of a row: summed
    over the rows of the storm's flows, TcpRetransSegs of its namespace."""
    ns = Netns(mtu=1500)
    try:
        tmux.type(f"{PROBE} --no-drops; echo EXIT=$?")
        attached = tmux.wait_for(lambda screen: re.search(r"^xctl-probe-ebpf: attached .*$",
                                                          screen, re.M), "the attached line")
        ns.drop_one_in(20, SUM_PORT)
        before = ns.counters()
        ns.traffic(SUM_PORT, 4)
        ns.wait_settled(SUM_PORT)
        after = ns.counters()
        # The last records reach the ring; SIGINT drains it whole before the probe exits.
        time.sleep(0.5)
        tmux.key("C-c")
        assert exited(tmux) == "0"
        history = tmux.history()
    finally:
        ns.close()
    header = header_of_table(history)
    flow, segs = column(header, "LOCAL → REMOTE"), column(header, "SEGS", right=True)
    ours = re.compile(r"127\.0\.0\.1:(\d+) → 127\.0\.0\.1:(\d+) *$")
    total = rows = 0
    for line in history.splitlines():
        match = re.match(r"\d\d:\d\d:\d\d\.\d{3} ", line) and ours.match(line[flow])
        if match and str(SUM_PORT) in match.groups():
            total += int(line[segs])
            rows += 1
    print(f"{rows} rows of the storm's flows")
    delta = {k: after[k] - before.get(k, 0) for k in after}
    check_segs(total, delta, "(sk, skb, err)" in attached.group(0))


def test_no_colour_with_no_color_set(storm, tmux):
    tmux.type(f"NO_COLOR=1 {PROBE}; echo EXIT=$?")
    screen = tmux.wait_for(lambda screen: header_of_table(screen) and rows_of(screen, storm.flow)
                           and screen, "header and a row of the storm's flow", escapes=True)
    assert ESC not in screen, screen
    tmux.key("C-c")
    assert exited(tmux) == "0"


def flows_first_row(screen: str) -> str:
    """The first row under the flows table's header in top."""
    lines = screen.splitlines()
    for at, line in enumerate(lines):
        if re.match(r"LOCAL → REMOTE +PID/COMM +JOB +SEGS▼? +DROPS▼? +RATE▼? +LAST", line):
            return lines[at + 1] if at + 1 < len(lines) else ""
    return ""


def assert_terminal_given_back(tmux: Tmux, probe_line: str) -> None:
    """After top: the shell's screen again, the cursor shown, and the tty's
    modes back to what a shell reads lines in (canonical, echoing)."""
    assert exited(tmux) == "0"
    assert tmux.flag("alternate_on") == "0"
    assert tmux.flag("cursor_flag") == "1"
    screen = tmux.screen()
    assert probe_line in screen and "xctl-probe-ebpf: stopped after" in screen
    tmux.type("stty -a; echo DONE")
    stty = tmux.wait_for(lambda screen: re.search(r"^DONE$", screen, re.M) and screen,
                         "stty's output")
    modes = set(stty.split())
    assert {"icanon", "echo", "isig", "icrnl"} <= modes, stty
    assert not {"-icanon", "-echo", "-isig"} & modes, stty


def test_top_shows_the_storm_first_and_gives_the_terminal_back(storm, tmux):
    command = f"{PROBE} top --span 5; echo EXIT=$?"
    tmux.type(command)
    first = tmux.wait_for(lambda screen: storm.flow in flows_first_row(screen) and screen,
                          "the storm's flow first among the flows")
    assert tmux.flag("alternate_on") == "1"
    row = flows_first_row(first)
    print(f"top's first flow:\n{row}")
    assert re.match(rf"{re.escape(storm.flow)} +{storm.owner} +\(no job\) +[\d,]+ +", row), row
    assert re.search(r"last 5 s: [\d,]+ segments retransmitted .*; sorted by segs", first)

    tmux.key("s")
    tmux.wait_for(lambda screen: "sorted by drops" in screen and "DROPS▼" in screen,
                  "the view sorted by drops")
    tmux.key("q")
    assert_terminal_given_back(tmux, command)

    # Ctrl-C quits as well.
    tmux.clear()
    tmux.type(command)
    tmux.wait_for(lambda screen: storm.flow in screen, "the storm's flow in top")
    tmux.key("C-c")
    assert_terminal_given_back(tmux, command)
