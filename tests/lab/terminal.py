"""A real terminal for the tests: a tmux server of the test's own (its own
socket, no configuration read), one window running a shell, keys typed into
it and its screen read back as a person would see it."""

import itertools
import os
import subprocess
import time
from typing import Callable, Dict, Optional

from .waits import patient

_names = itertools.count()


class Tmux:
    """A tmux server on a socket of its own, with one session ``t`` of
    ``width`` x ``height`` cells running ``bash`` without start-up files;
    close() kills the server and everything it runs."""

    def __init__(self, width: int = 200, height: int = 50,
                 env: Optional[Dict[str, str]] = None):
        self.socket = f"xpt-{os.getpid()}-{next(_names)}"
        # UTF-8 both for tmux (-u) and the shell: the table's arrow and ellipsis.
        self._env = {**os.environ, "LANG": "C.UTF-8", **(env or {})}
        self._env.pop("TMUX", None)
        # A history large enough for a storm's rows, set before the window
        # is made: a window keeps the limit it was made with.
        self.run("-f", "/dev/null", "start-server", ";",
                 "set-option", "-g", "history-limit", "200000", ";",
                 "new-session", "-d", "-x", str(width), "-y", str(height), "-s", "t",
                 "env PS1='$ ' bash --norc --noprofile")

    def run(self, *args: str) -> str:
        return subprocess.run(["tmux", "-u", "-L", self.socket, *args], env=self._env,
                              check=True, capture_output=True, text=True).stdout

    def type(self, text: str) -> None:
        """``text`` typed into the pane literally, then Enter."""
        self.run("send-keys", "-t", "t", "-l", text)
        self.run("send-keys", "-t", "t", "Enter")

    def key(self, key: str) -> None:
        """One key as tmux names it: ``q``, ``C-c``."""
        self.run("send-keys", "-t", "t", key)

    def screen(self, escapes: bool = False) -> str:
        """What the pane shows now; with ``escapes``, its colours and
        attributes as escape sequences."""
        return self.run("capture-pane", "-p", *(["-e"] if escapes else []), "-t", "t")

    def history(self) -> str:
        """Everything the pane has shown, scrolled off or not, each line
        wrapped by the terminal joined again."""
        return self.run("capture-pane", "-p", "-J", "-S", "-", "-E", "-", "-t", "t")

    def flag(self, name: str) -> str:
        """A pane's format variable: alternate_on, cursor_flag, ..."""
        return self.run("display-message", "-p", "-t", "t", f"#{{{name}}}").strip()

    def clear(self) -> None:
        """An empty screen and history, the shell waiting."""
        self.type("clear")
        self.wait_for(lambda screen: screen.strip() == "$", "a cleared screen")
        self.run("clear-history", "-t", "t")

    def wait_for(self, predicate: Callable[[str], object], what: str,
                 timeout: float = 60.0, escapes: bool = False):
        """Reads the screen until ``predicate(screen)`` is true, and returns
        what it gave; fails with the last screen after ``timeout``."""
        deadline = time.monotonic() + patient(timeout)
        while True:
            screen = self.screen(escapes)
            found = predicate(screen)
            if found:
                return found
            if time.monotonic() >= deadline:
                raise AssertionError(f"no {what} after {timeout} s; the screen:\n{screen}")
            time.sleep(0.2)

    def close(self) -> None:
        subprocess.run(["tmux", "-L", self.socket, "kill-server"], capture_output=True)

    def __enter__(self) -> "Tmux":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
