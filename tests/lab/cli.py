"""The probe's command line run as a person would, and what every failure
must look like: one line on stderr, a documented exit code, nothing on stdout."""

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


def as_nobody_with(caps):
    """setpriv: uid nobody holding exactly ``caps`` (names as in capability.h)."""
    spec = ",".join(["-all"] + [f"+{c[4:].lower()}" for c in caps])
    return ("setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups",
            f"--inh-caps={spec}", f"--ambient-caps={spec}", f"--bounding-set={spec}",
            "--no-new-privs")
