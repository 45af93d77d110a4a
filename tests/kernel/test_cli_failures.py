"""The failures that need the kernel: no privilege, no BTF, a bad object, a
kernel without the hook. Each is one line on stderr and a documented exit
code, caused for real, not mocked."""

import subprocess
from pathlib import Path

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


@requires_root
def test_kernel_without_the_hook(tmp_path):
    source = tmp_path / "missing_hook.bpf.c"
    source.write_text(
        '#include <linux/bpf.h>\n#include <bpf/bpf_helpers.h>\n#include "record.h"\n'
        'char LICENSE[] SEC("license") = "GPL";\n'
        # What the loader sets up before load, so that only the hook is missing.
        "struct { __uint(type, BPF_MAP_TYPE_RINGBUF); __uint(max_entries, 4096); }"
        ' records SEC(".maps");\n'
        'const volatile struct xp_drop_policy drop_policy SEC(".rodata.drops") = {};\n'
        'SEC("tp_btf/xp_no_such_tracepoint") int xp_missing_hook(void *ctx) { return 0; }\n'
    )
    obj = tmp_path / "missing_hook.bpf.o"
    include = subprocess.run(["gcc", "-print-multiarch"], capture_output=True, text=True).stdout
    subprocess.run(["clang", "-O2", "-g", "-target", "bpf", f"-I/usr/include/{include.strip()}",
                    f"-I{BPF_SOURCES}", "-c", str(source), "-o", str(obj)], check=True)
    assert_one_line_error(run_probe("--object", str(obj)), EXIT_KERNEL_UNSUPPORTED,
                          "xp_no_such_tracepoint")
    wait_programs_gone()
