"""SIGTERM and SIGINT, turned into a flag and a descriptor to poll; a stop
asked for from within (top's ``q``) takes the same way.

Its own module, light on imports: the CLI installs it before it loads the
BPF object, and imports the rest of the stream only after the load (libbpf's
parse of the kernel's BTF is the probe's peak of memory: nothing else should
be in memory yet).
"""

import os
import signal

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


class StopSignals:
    """SIGTERM and SIGINT as a flag, and a descriptor poll() wakes up on.

    Installed by the CLI before anything is loaded, so a signal that comes
    while the probe is still starting ends it as cleanly as one that comes
    later: the loop sees the flag and stops at once.
    """

    def __init__(self):
        self.requested = False
        self.fd = -1
        self._wake_w = -1
        self._previous = {}
        self._previous_wakeup = -1

    def _on_signal(self, signum, frame) -> None:
        self.requested = True

    def request(self) -> None:
        """A stop asked for from within (``q`` in top), from any thread: it
        ends the stream exactly as SIGTERM would."""
        self.requested = True
        try:
            os.write(self._wake_w, b"\0")
        except BlockingIOError:  # the pipe is full of wake-ups already
            pass

    def __enter__(self) -> "StopSignals":
        self.fd, self._wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        self._previous = {sig: signal.signal(sig, self._on_signal) for sig in STOP_SIGNALS}
        self._previous_wakeup = signal.set_wakeup_fd(self._wake_w, warn_on_full_buffer=False)
        return self

    def __exit__(self, *exc) -> None:
        signal.set_wakeup_fd(self._previous_wakeup)
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        os.close(self.fd)
        os.close(self._wake_w)
