"""top's hold on a terminal, on a real pseudo-terminal and without a kernel:
keys read in cbreak mode and the modes put back, a stop asked for from a
key taking the way of a stop signal, and the screen given back (alternate
screen left, cursor shown, modes restored) when the view fails."""

import os
import select
import termios
import threading
import time

import pytest
from rich.console import Console

from xctl_probe.output.stop import StopSignals
from xctl_probe.terminal import top_counts
from xctl_probe.terminal.keys import Keys
from xctl_probe.terminal.top import TopView

ALT_SCREEN_ON, ALT_SCREEN_OFF = b"\x1b[?1049h", b"\x1b[?1049l"
CURSOR_HIDDEN, CURSOR_SHOWN = b"\x1b[?25l", b"\x1b[?25h"


@pytest.fixture
def pty():
    master, slave = os.openpty()
    yield master, slave
    os.close(master)
    os.close(slave)


def wait_for(condition, timeout_s=10.0):
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline
        time.sleep(0.01)


def read_all(fd) -> bytes:
    data = b""
    while select.select([fd], [], [], 0.2)[0]:
        data += os.read(fd, 1 << 16)
    return data


def test_keys_are_read_one_at_a_time_and_the_modes_come_back(pty):
    master, slave = pty
    before = termios.tcgetattr(slave)
    pressed = []
    with Keys(slave, pressed.append) as keys:
        assert keys.reading
        lflag = termios.tcgetattr(slave)[3]
        # No line to wait for, nothing echoed, Ctrl-C still a signal.
        assert not lflag & termios.ICANON and not lflag & termios.ECHO and lflag & termios.ISIG
        os.write(master, b"sq")
        wait_for(lambda: pressed == ["s", "q"])
    assert termios.tcgetattr(slave) == before


def test_without_a_terminal_no_key_is_read():
    read_end, write_end = os.pipe()
    with Keys(read_end, lambda key: None) as keys:
        assert not keys.reading
    os.close(read_end)
    os.close(write_end)


def test_a_stop_asked_for_from_another_thread_wakes_the_poll_as_a_signal_does():
    with StopSignals() as stop:
        assert not stop.requested
        poller = select.poll()
        poller.register(stop.fd, select.POLLIN)
        threading.Thread(target=stop.request).start()
        assert poller.poll(10_000) and stop.requested


def view_on(slave, stop) -> TopView:
    console = Console(file=os.fdopen(os.dup(slave), "w"), force_terminal=True, width=100,
                      height=30)
    return TopView(stop, 10, "segs", console=console, keys_fd=slave)


def test_q_stops_and_the_terminal_is_given_back(pty):
    master, slave = pty
    before = termios.tcgetattr(slave)
    with StopSignals() as stop:
        with view_on(slave, stop):
            wait_for(lambda: b"Flows" in read_all(master))
            os.write(master, b"q")
            wait_for(lambda: stop.requested)
    shown = read_all(master)
    assert ALT_SCREEN_OFF in shown and CURSOR_SHOWN in shown
    assert termios.tcgetattr(slave) == before


def test_a_view_that_fails_stops_the_stream_and_gives_the_terminal_back_first(pty, monkeypatch):
    master, slave = pty
    before = termios.tcgetattr(slave)

    def broken(self, now_ms, sort):
        raise RuntimeError("the view broke")

    monkeypatch.setattr(top_counts.TopCounts, "view", broken)
    with StopSignals() as stop:
        with pytest.raises(RuntimeError, match="the view broke"):
            with view_on(slave, stop):
                wait_for(lambda: stop.requested)
    shown = read_all(master)
    assert shown.index(ALT_SCREEN_ON) < shown.index(ALT_SCREEN_OFF)
    assert shown.index(CURSOR_HIDDEN) < shown.index(CURSOR_SHOWN)
    assert b"Traceback" not in shown
    assert termios.tcgetattr(slave) == before
