"""The failures that need the kernel: no privilege, no BTF, a bad object, a
kernel without the hook, a program the verifier rejects. Each is one line on
stderr and a documented exit code, caused for real, not mocked."""

import os
import subprocess
from itertools import takewhile
from pathlib import Path

from xctl_probe.commands.check import DETAIL_INDENT

from lab.cli import (EXIT_BAD_INSTALL, EXIT_KERNEL_UNSUPPORTED, EXIT_NO_BTF, EXIT_NO_PRIVILEGE,
                     assert_one_line_error, run_probe)
from lab.marks import requires_root
from lab.programs import wait_programs_gone

# bpf/record.h: the drop policy the loader writes into an object before load.
BPF_SOURCES = Path(__file__).resolve().parents[2] / "bpf"


@requires_root
def test_not_privileged_as_nobody():
    setpriv = ("setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups")
    stderr = assert_one_line_error(run_probe(prefix=setpriv), EXIT_NO_PRIVILEGE, "CAP_BPF")
    assert "root" in stderr


@requires_root
def test_no_kernel_btf():
    # A private mount namespace where /sys/kernel/btf is an empty tmpfs: the
    # probe sees a kernel without BTF; the host is untouched.
    hide_btf = ("unshare", "--mount", "--propagation", "private", "sh", "-c",
                'mount -t tmpfs none /sys/kernel/btf && exec "$@"', "sh")
    assert_one_line_error(run_probe(prefix=hide_btf), EXIT_NO_BTF, "/sys/kernel/btf/vmlinux",
                          "CONFIG_DEBUG_INFO_BTF")


@requires_root
def test_missing_object(tmp_path):
    missing = tmp_path / "nowhere.bpf.o"
    assert_one_line_error(run_probe("--object", str(missing)), EXIT_BAD_INSTALL, str(missing),
                          "reinstall")


@requires_root
def test_object_that_is_not_elf(tmp_path):
    garbage = tmp_path / "garbage.bpf.o"
    garbage.write_bytes(b"this is not an ELF file\n" * 10)
    assert_one_line_error(run_probe("--object", str(garbage)), EXIT_BAD_INSTALL, "cannot open")


def _compile(tmp_path, name, programs):
    """A BPF object of ``programs`` beside the probe's ring buffer map, so that
    only what the programs do is wrong."""
    source = tmp_path / f"{name}.bpf.c"
    source.write_text(
        '#include <linux/bpf.h>\n#include <bpf/bpf_helpers.h>\n#include "record.h"\n'
        # The socket state's constant and maps, which the loader sets up too.
        '#include "sock_state.bpf.h"\n'
        'char LICENSE[] SEC("license") = "GPL";\n'
        "struct { __uint(type, BPF_MAP_TYPE_RINGBUF); __uint(max_entries, 4096); }"
        ' records SEC(".maps");\n'
        # What the loader sets up before load, so that only the programs can be wrong.
        'const volatile struct xp_drop_policy drop_policy SEC(".rodata.drops") = {};\n'
        + programs
    )
    obj = tmp_path / f"{name}.bpf.o"
    include = subprocess.run(["gcc", "-print-multiarch"], capture_output=True, text=True).stdout
    subprocess.run(["clang", "-O2", "-g", "-target", "bpf", f"-I/usr/include/{include.strip()}",
                    f"-I{BPF_SOURCES}", "-c", str(source), "-o", str(obj)], check=True)
    return obj


@requires_root
def test_kernel_without_the_hook(tmp_path):
    obj = _compile(tmp_path, "missing_hook",
                   'SEC("tp_btf/xp_no_such_tracepoint") int xp_missing_hook(void *ctx) '
                   "{ return 0; }\n")
    assert_one_line_error(run_probe("--object", str(obj)), EXIT_KERNEL_UNSUPPORTED,
                          "xp_no_such_tracepoint")
    wait_programs_gone()


LOG_IS = "the verifier's log: "
# A random number taken for a pointer: the verifier refuses to read through it.
READS_THROUGH_A_NUMBER = ('SEC("socket") int xp_rejected(void *ctx) '
                          "{ return *(volatile int *)(long)bpf_get_prandom_u32(); }\n")
VERIFIER_SAYS = "invalid mem access"


def _kept_log(line):
    return Path(line.rstrip("\n").rsplit(LOG_IS, 1)[1])


@requires_root
def test_a_program_the_verifier_rejects_leaves_its_log_where_the_error_says(tmp_path):
    obj = _compile(tmp_path, "rejected", READS_THROUGH_A_NUMBER)
    logs = tmp_path / "logs"
    logs.mkdir()
    # As the unit runs it: systemd names its LogsDirectory= in the environment.
    as_the_unit = ("env", f"LOGS_DIRECTORY={logs}")
    stderr = assert_one_line_error(run_probe("--object", str(obj), prefix=as_the_unit),
                                   EXIT_KERNEL_UNSUPPORTED, "xp_rejected", LOG_IS)
    log = _kept_log(stderr)
    assert log.parent == logs
    assert VERIFIER_SAYS in log.read_text()
    wait_programs_gone()


@requires_root
def test_check_shows_the_end_of_the_verifiers_log_of_a_rejected_program(tmp_path):
    obj = _compile(tmp_path, "rejected", READS_THROUGH_A_NUMBER)
    result = run_probe("check", "--object", str(obj), prefix=("env", f"TMPDIR={tmp_path}"))
    assert result.returncode == EXIT_KERNEL_UNSUPPORTED and result.stderr == b""
    lines = result.stdout.decode().splitlines()
    fail = next(i for i, line in enumerate(lines) if line.startswith("FAIL hooks: "))
    tail = list(takewhile(lambda line: line.startswith(DETAIL_INDENT), lines[fail + 1:]))
    # Outside the unit: a directory of this user's own in the temp directory.
    log = _kept_log(lines[fail])
    assert log.parent == tmp_path / f"xctl-probe-ebpf-{os.geteuid()}"
    written = [line for line in log.read_text().splitlines() if line.strip()]
    assert tail and [line[len(DETAIL_INDENT):] for line in tail] == written[-len(tail):]
    assert any(VERIFIER_SAYS in line for line in tail), tail
    # The tail ends where the next finding begins (owners are asked of loaded
    # programs only, so the environment's, ok or warn as the node has it).
    assert lines[fail + 1 + len(tail)].split(maxsplit=1)[1].startswith("environment: ")
