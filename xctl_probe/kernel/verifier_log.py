"""A program the kernel refused to load: the verifier's log, kept in a file
that outlives the probe, for the one-line error to name and ``check`` to show
the end of.

The file is where the service may write and a person will look: the unit's
LogsDirectory= (systemd passes it as $LOGS_DIRECTORY; the unit's /tmp is
private and gone with it), else a directory of this user's own in the temp
directory. One file a program, replaced by the next failure, so a probe
restarted every second (xctl does) does not fill the disk.
"""

import contextlib
import os
import re
import stat
import tempfile
from pathlib import Path
from typing import NamedTuple, Optional, Tuple

from .libbpf_log import LoadLog

# Enough to show the verifier's complaint, which comes just before its
# closing statistics.
TAIL_LINES = 5


class Kept(NamedTuple):
    said: str  # for the end of the one-line error: where the log is, or why it is not
    tail: Tuple[str, ...]  # the log's last lines


NOTHING = Kept("", ())


def directory() -> Path:
    """Where the logs go, made if need be; OSError when it cannot be used."""
    logs = os.environ.get("LOGS_DIRECTORY")
    if logs:
        # systemd joins several LogsDirectory= with ":"; the unit has one.
        return Path(logs.split(":")[0])
    path = Path(tempfile.gettempdir()) / f"xctl-probe-ebpf-{os.geteuid()}"
    try:
        path.mkdir(mode=0o700)
    except FileExistsError:
        pass
    # A temp directory is everyone's: another user could have made this one,
    # or a symlink of that name, to read the log or swap it.
    found = os.lstat(path)
    if (not stat.S_ISDIR(found.st_mode) or found.st_uid != os.geteuid()
            or found.st_mode & 0o022):
        raise OSError(f"{path} is not a directory of this user's own")
    return path


def _write(log: LoadLog) -> Path:
    folder = directory()
    # Program names are the object's symbols: nothing in them may lead elsewhere.
    name = re.sub(r"[^A-Za-z0-9_.-]", "_", log.program)
    path = folder / f"{name}.verifier.log"
    # Written beside its place and renamed: a reader never sees half a log.
    out = tempfile.NamedTemporaryFile("w", encoding="utf-8", dir=folder, prefix=f".{name}.",
                                      delete=False)
    try:
        with out:
            # The kernel's log may end without one; a file of lines does not.
            out.write(log.text if log.text.endswith("\n") else log.text + "\n")
        os.replace(out.name, path)
    except OSError:
        with contextlib.suppress(OSError):
            os.unlink(out.name)
        raise
    return path


def keep(log: Optional[LoadLog]) -> Kept:
    """Writes ``log`` to its file; what the error and ``check`` say of it."""
    if log is None:
        return NOTHING
    tail = tuple(line for line in log.text.splitlines() if line.strip())[-TAIL_LINES:]
    try:
        path = _write(log)
    except OSError as exc:
        return Kept(f"; the verifier's log could not be kept ({exc})", tail)
    return Kept(f"; the verifier's log: {path}", tail)
