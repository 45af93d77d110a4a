"""Every failure is one line on stderr, a documented exit code, nothing on
stdout and never a traceback. Each case is caused for real, not mocked."""

import subprocess
import sys
from pathlib import Path

import pytest

from conftest import requires_root
from netlab import PROBE, probe_env, wait_programs_gone

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


def test_unknown_flag():
    assert_one_line_error(run_probe("--bogus"), EXIT_USAGE, "--bogus", "--help")


@pytest.mark.parametrize("value", ["abc", "0", "-1", "1e9", "nan"])
def test_bad_window(value):
    assert_one_line_error(run_probe("--window", value), EXIT_USAGE, "--window")


def test_missing_option_value():
    assert_one_line_error(run_probe("--window"), EXIT_USAGE, "--window")


def test_unexpected_argument():
    assert_one_line_error(run_probe("extra"), EXIT_USAGE, "extra")


def test_help_documents_exit_codes_and_xctl():
    result = run_probe("--help")
    assert result.returncode == 0
    text = result.stdout.decode()
    assert "--window" in text and "ark run --probe" in text
    for code in range(1, 7):
        assert f"{code} " in text


def test_version():
    result = run_probe("--version")
    assert result.returncode == 0
    assert result.stdout.decode().startswith("xctl-probe-ebpf ")


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


@requires_root
def test_kernel_without_the_hook(tmp_path):
    source = tmp_path / "missing_hook.bpf.c"
    source.write_text(
        "#include <linux/bpf.h>\n#include <bpf/bpf_helpers.h>\n"
        'char LICENSE[] SEC("license") = "GPL";\n'
        # The probe's maps, so that only the hook is missing.
        "struct { __uint(type, BPF_MAP_TYPE_RINGBUF); __uint(max_entries, 4096); }"
        ' records SEC(".maps");\n'
        'SEC("tp_btf/xp_no_such_tracepoint") int xp_missing_hook(void *ctx) { return 0; }\n'
    )
    obj = tmp_path / "missing_hook.bpf.o"
    include = subprocess.run(["gcc", "-print-multiarch"], capture_output=True, text=True).stdout
    subprocess.run(["clang", "-O2", "-g", "-target", "bpf", f"-I/usr/include/{include.strip()}",
                    "-c", str(source), "-o", str(obj)], check=True)
    assert_one_line_error(run_probe("--object", str(obj)), EXIT_KERNEL_UNSUPPORTED,
                          "xp_no_such_tracepoint")
    wait_programs_gone()


def test_broken_install_is_one_line(tmp_path):
    """The script run by a python3 that cannot import the package, with no
    interpreter to hand over to, says so in one line."""
    script = tmp_path / "xctl-probe-ebpf"
    script.write_bytes(b"#!" + str(tmp_path / "no-python").encode() + b"\n"
                       + Path(PROBE).read_bytes().split(b"\n", 1)[1])
    result = subprocess.run([sys.executable, "-S", "-I", str(script)], capture_output=True,
                            env=probe_env(), timeout=30)
    assert result.returncode == EXIT_BAD_INSTALL, result.stderr
    assert result.stdout == b""
    assert result.stderr.count(b"\n") == 1 and b"Traceback" not in result.stderr
