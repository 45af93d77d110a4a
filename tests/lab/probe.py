"""The installed probe, started as xctl starts it (``python3 PATH``)."""

import fcntl
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Dict, List, Optional, Sequence

from .waits import patient

VENV_BIN = Path(sys.executable).parent
PROBE = VENV_BIN / "xctl-probe-ebpf"
F_SETPIPE_SZ = 1031  # fcntl.F_SETPIPE_SZ from Python 3.10 on


def probe_env() -> Dict[str, str]:
    """The environment xctl passes on, minus PYTHONUNBUFFERED, which would hide a missing flush."""
    env = dict(os.environ)
    env.pop("PYTHONUNBUFFERED", None)
    return env


class ProbeProcess:
    """The installed probe, started as xctl starts it, its stdout collected as raw lines."""

    def __init__(self, *args: str, interpreter: Optional[str] = None, read_stderr: bool = True,
                 prefix: Sequence[str] = (), script: Path = PROBE,
                 pipe_bytes: Optional[int] = None):
        cmd = [*prefix, interpreter or sys.executable, str(script), *args]
        self.proc = subprocess.Popen(
            cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            env=probe_env(),
        )
        if pipe_bytes is not None:
            # How much the probe can write before a reader that stopped blocks it
            # (64 KiB by default, a page at least).
            fcntl.fcntl(self.proc.stdout.fileno(), F_SETPIPE_SZ, pipe_bytes)
        self.lines: List[bytes] = []
        self.arrived_ms: List[float] = []
        self._arrived = threading.Condition()
        self._reading = threading.Event()
        self._reading.set()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        self.attach_line = self._wait_attached() if read_stderr else None

    def _read(self) -> None:
        for line in self.proc.stdout:
            self._reading.wait()
            with self._arrived:
                self.arrived_ms.append(time.time() * 1000)
                self.lines.append(line)
                self._arrived.notify_all()

    def _wait_attached(self) -> str:
        """The start-up line, after the notices that may come before it (a
        kernel without drop reasons says so first)."""
        said = []
        while True:
            line = self.proc.stderr.readline().decode()
            said.append(line)
            if "attached" in line:
                return line
            if not line or ": error:" in line:
                self.proc.kill()
                raise RuntimeError(f"probe did not attach: {said!r} {self.proc.stderr.read()!r}")

    @property
    def err_layout(self) -> bool:
        """Whether the probe attached to the 6.17+ tracepoint (sk, skb, err), as it said."""
        if self.attach_line is None:
            raise RuntimeError("started with read_stderr=False: the attach line was not read")
        return "(sk, skb, err)" in self.attach_line

    def pause(self) -> None:
        """Stops reading stdout, as a stalled xctl would: once the pipe is
        full, the probe's writes block."""
        self._reading.clear()

    def resume(self) -> None:
        self._reading.set()

    def wait_lines(self, count: int, timeout: float) -> bool:
        return self.wait_for(lambda: len(self.lines) >= count, timeout)

    def wait_for(self, predicate, timeout: float) -> bool:
        """Until ``predicate()`` holds, checked as lines arrive."""
        with self._arrived:
            return bool(self._arrived.wait_for(predicate, patient(timeout)))

    def stop(self, timeout: float = 10.0) -> int:
        self.resume()
        self.proc.send_signal(signal.SIGTERM)
        rc = self.proc.wait(patient(timeout))
        self._reader.join(patient(timeout))
        return rc

    def stderr_text(self) -> str:
        return self.proc.stderr.read().decode(errors="replace")

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
