"""A socket's job, from its cgroup.

Every record carries the cgroup v2 id of the socket (of the process that
created it): the inode of the cgroup's directory under the cgroup2 mount. Its
path names the job on the usual schedulers:

- Slurm with cgroup v2: a ``job_<id>`` directory (``.../job_4242/step_0/...``);
- Kubernetes: the pod's UID, cgroupfs driver ``.../pod<uid>/...``, systemd
  driver ``...-pod<uid with _ for ->.slice/...``.

This needs no access to the owner's environment and still answers after the
process has exited, as long as its cgroup is there. The map from id to path
comes from walking the cgroup2 tree, again only when an id is unknown and at
most once per ``refresh_s``; the answer for an id is kept (a cgroup's id is
never given to another while the node runs).
"""

import os
import re
import time
from pathlib import Path
from typing import Dict, Optional

_SLURM_JOB = re.compile(r"/job_(\d+)(?=/|$)")
_POD_UID = re.compile(
    r"pod([0-9a-f]{8}[-_][0-9a-f]{4}[-_][0-9a-f]{4}[-_][0-9a-f]{4}[-_][0-9a-f]{12})")


def cgroup2_root(mounts: str = "/proc/self/mounts") -> Optional[Path]:
    try:
        with open(mounts) as table:
            for line in table:
                fields = line.split()
                if len(fields) > 2 and fields[2] == "cgroup2":
                    return Path(fields[1])
    except OSError:
        return None
    return None


def pod_uid(text: str) -> Optional[str]:
    """The Kubernetes pod UID in a cgroup path (or /proc/PID/cgroup), either spelling."""
    pod = _POD_UID.search(text)
    return pod.group(1).replace("_", "-") if pod else None


def job_of_path(path: str) -> Optional[str]:
    """The job a cgroup path names, if any: Slurm's job id, else a pod UID."""
    slurm = _SLURM_JOB.search(path)
    if slurm:
        return slurm.group(1)
    return pod_uid(path)


class CgroupJobs:
    def __init__(self, root: Optional[Path] = None, refresh_s: float = 5.0,
                 limit: int = 65536):
        self._root = root if root is not None else cgroup2_root()
        self._refresh_s = refresh_s
        self._limit = limit
        self._paths: Dict[int, str] = {}
        self._jobs: Dict[int, Optional[str]] = {}
        self._walked_at = float("-inf")

    def job(self, cgroup_id: int) -> Optional[str]:
        """The job of cgroup ``cgroup_id``; None if its path names none, or it
        cannot be found."""
        if not cgroup_id or self._root is None:
            return None
        if cgroup_id in self._jobs:
            return self._jobs[cgroup_id]
        path = self._paths.get(cgroup_id)
        if path is None:
            if time.monotonic() - self._walked_at < self._refresh_s:
                return None
            self._walk()
            path = self._paths.get(cgroup_id)
            if path is None:
                return None
        if len(self._jobs) >= self._limit:
            self._jobs.clear()
        job = self._jobs[cgroup_id] = job_of_path(path)
        return job

    def _walk(self) -> None:
        self._walked_at = time.monotonic()
        paths: Dict[int, str] = {}
        root = str(self._root)
        for directory, _, _ in os.walk(root):
            try:
                paths[os.stat(directory).st_ino] = directory[len(root):] or "/"
            except OSError:  # removed meanwhile
                continue
            if len(paths) >= self._limit:
                break
        self._paths = paths
