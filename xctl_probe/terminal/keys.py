"""Keys pressed while ``top`` runs, one at a time: stdin in cbreak mode (no
line to wait for, nothing echoed; Ctrl-C still sends SIGINT), read by a
thread of its own, and the terminal's modes put back as they were when the
view ends, however it ends."""

import os
import select
import signal
import termios
import threading
import tty
from typing import Callable, Optional


class Keys:
    def __init__(self, fd: int, on_key: Callable[[str], None]):
        """``on_key`` is called on the keys' thread with each key pressed;
        without a terminal on ``fd`` no key is read."""
        self._fd = fd
        self._on_key = on_key
        self._saved: Optional[list] = None
        self._thread: Optional[threading.Thread] = None
        self._wake_r = self._wake_w = -1

    @property
    def reading(self) -> bool:
        return self._thread is not None

    def __enter__(self) -> "Keys":
        if not os.isatty(self._fd):
            return self
        self._saved = termios.tcgetattr(self._fd)
        self._wake_r, self._wake_w = os.pipe2(os.O_CLOEXEC)
        try:
            tty.setcbreak(self._fd, termios.TCSANOW)
            self._thread = threading.Thread(target=self._run, name="xctl-probe-keys",
                                            daemon=True)
            self._thread.start()
        except BaseException:
            self._restore()
            raise
        return self

    def __exit__(self, *exc) -> None:
        self._restore()

    def _restore(self) -> None:
        if self._thread is not None:
            os.write(self._wake_w, b"\0")
            self._thread.join()
            self._thread = None
        if self._saved is not None:
            # TCSAFLUSH: keys typed but not read are not left to the shell.
            termios.tcsetattr(self._fd, termios.TCSAFLUSH, self._saved)
            self._saved = None
        for fd in (self._wake_r, self._wake_w):
            if fd >= 0:
                os.close(fd)
        self._wake_r = self._wake_w = -1

    def _run(self) -> None:
        # Stop signals belong to the main thread.
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM, signal.SIGINT})
        poller = select.poll()
        poller.register(self._fd, select.POLLIN)
        poller.register(self._wake_r, select.POLLIN)
        while True:
            events = dict(poller.poll())
            if self._wake_r in events:
                return
            if events.get(self._fd, 0) & (select.POLLHUP | select.POLLERR | select.POLLNVAL):
                return
            data = os.read(self._fd, 64)
            if not data:
                return
            for key in data.decode(errors="replace"):
                self._on_key(key)
