"""What a line says of a process: its comm and its job, read from /proc and
kept for a while, since one process owns many sockets and retransmits on
them in bursts.

The job is what the process's cgroup path names, by the rule a socket's
cgroup is read with (jobs.job_of_path: Slurm's job_<id>, a Kubernetes pod
UID), so that a line whose socket gave no cgroup (a packet dropped before
the kernel found its socket) names the same job; else a variable of the
process's environment (``job_env``, Slurm's SLURM_JOB_ID by default).
"""

import time
from typing import Optional, Sequence, Tuple

import msgspec

from .bounded_map import BoundedMap
from .jobs import job_of_path


class Owner(msgspec.Struct, frozen=True, gc=False):
    pid: int
    comm: str
    job_id: Optional[str]


def kernel_text(raw: bytes) -> str:
    """Kernel bytes as valid UTF-8 whatever they hold: invalid bytes become \\xNN."""
    return raw.decode("utf-8", "backslashreplace")


class Processes:
    def __init__(self, job_env: Sequence[str], proc: str, ttl: float, limit: int = 4096):
        self._job_env = [name.encode() + b"=" for name in job_env]
        self._proc = proc
        self._ttl = ttl
        self._cache: "BoundedMap[int, Tuple[float, Optional[Owner]]]" = BoundedMap(limit)

    def get(self, pid: int) -> Optional[Owner]:
        """Process ``pid`` as read at most ``ttl`` seconds ago; as it was last
        seen if it has exited since; None if it was never seen."""
        now = time.monotonic()
        cached = self._cache.get(pid)
        if cached is not None and now - cached[0] < self._ttl:
            return cached[1]
        owner = self._read(pid)
        if owner is None and cached is not None:
            owner = cached[1]
        self._cache.put(pid, (now, owner))
        return owner

    def _read(self, pid: int) -> Optional[Owner]:
        base = f"{self._proc}/{pid}"
        try:
            with open(f"{base}/comm", "rb") as f:
                comm = kernel_text(f.read().rstrip(b"\n"))
        except OSError:
            return None
        return Owner(pid=pid, comm=comm, job_id=self._job_id(base))

    def _job_id(self, base: str) -> Optional[str]:
        return self._cgroup_job(base) or self._environment_job(base)

    @staticmethod
    def _cgroup_job(base: str) -> Optional[str]:
        """The job of the first of the process's cgroups (one per line,
        ``ID:CONTROLLERS:PATH``) whose path names one."""
        try:
            with open(f"{base}/cgroup", "rb") as f:
                lines = f.read().decode(errors="replace").splitlines()
        except OSError:
            return None
        return next(filter(None, (job_of_path(line.split(":", 2)[-1]) for line in lines)), None)

    def _environment_job(self, base: str) -> Optional[str]:
        try:
            with open(f"{base}/environ", "rb") as f:
                environ = f.read().split(b"\0")
        except OSError:
            return None
        for prefix in self._job_env:
            for variable in environ:
                if variable.startswith(prefix) and len(variable) > len(prefix):
                    return kernel_text(variable[len(prefix):])
        return None
