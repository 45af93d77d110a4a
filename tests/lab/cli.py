"""The probe's command line run as a person would, and what every failure
must look like: one line on stderr, a documented exit code, nothing on stdout."""

import resource
import subprocess
import sys

from .probe import PROBE, probe_env

# The documented codes, restated: the test holds the CLI to the README.
EXIT_USAGE, EXIT_NO_PRIVILEGE, EXIT_NO_BTF = 2, 3, 4
EXIT_BAD_INSTALL, EXIT_KERNEL_UNSUPPORTED = 5, 6


def run_probe(*args, prefix=(), timeout=30):
    return subprocess.run(
        [*prefix, sys.executable, str(PROBE), *args], stdin=subprocess.DEVNULL,
        capture_output=True, env=probe_env(), timeout=timeout,
    )


def assert_one_line_error(result, exit_code, *needles):
    stderr = result.stderr.decode()
    assert result.returncode == exit_code, stderr
    assert result.stdout == b""
    assert stderr.count("\n") == 1 and stderr.endswith("\n"), stderr
    assert stderr.startswith("xctl-probe-ebpf: error: "), stderr
    assert "Traceback" not in stderr
    for needle in needles:
        assert needle in stderr, stderr
    return stderr


CAP_SYS_RESOURCE = 24


def _memlock() -> str:
    """The locked-memory limit for a probe run as the unit runs it: none
    (LimitMEMLOCK=infinity), which Linux before 5.11 needs, where this
    process may lift it (CAP_SYS_RESOURCE: a guest's root); else the hard
    limit, which newer kernels do not charge BPF memory to."""
    with open("/proc/self/status") as status:
        effective = int(next(line for line in status if line.startswith("CapEff:")).split()[1],
                        16)
    if effective >> CAP_SYS_RESOURCE & 1:
        return "unlimited"
    hard = resource.getrlimit(resource.RLIMIT_MEMLOCK)[1]
    return "unlimited" if hard == resource.RLIM_INFINITY else str(hard)


def as_nobody_with(caps):
    """setpriv: uid nobody holding exactly ``caps`` (names as in capability.h),
    with locked memory as the unit gives it."""
    spec = ",".join(["-all"] + [f"+{c[4:].lower()}" for c in caps])
    return ("prlimit", f"--memlock={_memlock()}", "setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups",
            f"--inh-caps={spec}", f"--ambient-caps={spec}", f"--bounding-set={spec}",
            "--no-new-privs")
