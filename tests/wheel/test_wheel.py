"""The wheel that ships (make wheel), judged as a node would meet it:
installed into a fresh venv, then run as xctl runs it, ``python3 PATH`` with
the system's python3, in a private mount namespace where libbpf, libelf, the
compilers and /usr/include are hidden. Run by make test-wheel, after the
wheel is built."""

import glob
import json
import os
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

import pytest

from lab.accounting import check_segs
from lab.marks import requires_root
from lab.scenarios import owner_share, run_pair

pytestmark = [requires_root, pytest.mark.wheel]

ROOT = Path(__file__).resolve().parents[2]
SYSTEM_PYTHON = "/usr/bin/python3"
TAG = "cp39-abi3-manylinux_2_28_x86_64"
HIDDEN_FILES = ["/usr/lib/*/libbpf.so*", "/usr/lib/*/libelf.so*", "/usr/lib/*/libelf-*.so",
                "/usr/lib/*/libbpf.a", "/usr/lib/*/libelf.a", "/usr/bin/gcc*", "/usr/bin/cc",
                "/usr/bin/c++", "/usr/bin/g++*", "/usr/bin/clang*", "/usr/bin/*-linux-gnu-gcc*",
                "/usr/bin/ld", "/usr/bin/ld.bfd", "/usr/bin/ld.gold"]
HIDDEN_DIRS = ["/usr/include", "/usr/lib/gcc", "/usr/lib/llvm-*", "/usr/libexec/gcc"]


@pytest.fixture(scope="module")
def wheel():
    wheels = glob.glob(str(ROOT / "dist" / "*.whl"))
    assert len(wheels) == 1, f"one wheel in dist/, found {wheels}: run make wheel"
    return Path(wheels[0])


@pytest.fixture(scope="module")
def wheel_venv(wheel):
    """A fresh venv of the system's python3, with the wheel and what it depends on."""
    base = Path(tempfile.mkdtemp(prefix="xpt-wheel-"))
    os.chmod(base, 0o755)
    venv = base / "venv"
    subprocess.run([SYSTEM_PYTHON, "-m", "venv", str(venv)], check=True)
    subprocess.run([str(venv / "bin" / "pip"), "install", "-q", str(wheel)], check=True)
    yield venv
    subprocess.run(["rm", "-rf", str(base)], check=True)


def hidden(cmd):
    """``cmd`` in a private mount namespace where the build tools and the
    libraries the wheel must bring itself are not there."""
    files = [f for pattern in HIDDEN_FILES for f in glob.glob(pattern)]
    dirs = [d for pattern in HIDDEN_DIRS for d in glob.glob(pattern)]
    script = "".join(f"mount --bind /dev/null '{f}' && " for f in files)
    script += "".join(f"mount -t tmpfs -o ro none '{d}' && " for d in dirs)
    return ["unshare", "--mount", "--propagation", "private", "sh", "-c",
            script + 'exec "$@"', "sh", *cmd]


def test_the_wheel_is_manylinux_2_28_abi3_and_carries_what_it_needs(wheel):
    assert wheel.name.endswith(f"-{TAG}.whl"), wheel.name
    show = subprocess.run([sys.executable, "-m", "auditwheel", "show", str(wheel)],
                          capture_output=True, text=True, check=True).stdout
    assert 'consistent with the following platform tag: "manylinux_2_28_x86_64"' in " ".join(
        show.split())
    names = subprocess.run([sys.executable, "-m", "zipfile", "-l", str(wheel)],
                           capture_output=True, text=True, check=True).stdout
    assert "xctl_probe/probe.bpf.o" in names and "xctl_probe/_libbpf.abi3.so" in names
    assert "xctl_probe/bench.bpf.o" in names
    assert "xctl_probe_ebpf.libs/libelf-" in names


def test_the_wheel_names_the_library_versions_it_was_built_with(wheel):
    with zipfile.ZipFile(wheel) as archive:
        vendored = archive.read("xctl_probe/VENDORED").decode()
    assert vendored == (ROOT / "build" / "out" / "vendor" / "prefix" / "VERSIONS").read_text()
    names = [line.split()[0] for line in vendored.splitlines()]
    assert names == ["zlib", "elfutils", "libbpf", "zig", "target"], vendored


def test_the_extension_needs_only_glibc_and_its_own_libelf(wheel_venv):
    [extension] = glob.glob(str(wheel_venv / "lib" / "python3*" / "site-packages" /
                                "xctl_probe" / "_libbpf.abi3.so"))
    ldd = subprocess.run(hidden(["ldd", extension]), capture_output=True, text=True,
                         check=True).stdout
    libelf = [line for line in ldd.splitlines() if "libelf" in line]
    assert len(libelf) == 1 and "xctl_probe_ebpf.libs/" in libelf[0], ldd
    assert "not found" not in ldd and "libbpf" not in ldd and "libz" not in ldd, ldd


def test_nothing_to_build_with_in_the_namespace():
    probe = hidden(["sh", "-c", "ls -A /usr/include | wc -l; gcc --version >/dev/null 2>&1; "
                    "echo gcc=$?; cat /usr/lib/*/libbpf.so.1 /usr/lib/*/libelf.so.1 | wc -c"])
    out = subprocess.run(probe, capture_output=True, text=True, check=True).stdout.split()
    assert out[0] == "0" and out[1] != "gcc=0" and out[2] == "0", out


@pytest.mark.parametrize("version", ["3.9", "3.14"])
def test_its_dependencies_resolve_for_python(wheel, version, tmp_path):
    report = tmp_path / "report.json"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "--dry-run", "--ignore-installed",
         "--report", str(report), "--target", str(tmp_path / "t"), "--python-version", version,
         "--only-binary=:all:", "--platform", "manylinux_2_28_x86_64",
         "--platform", "manylinux_2_17_x86_64", "--platform", "manylinux2014_x86_64",
         str(wheel)], check=True)
    installed = {item["metadata"]["name"].lower()
                 for item in json.loads(report.read_text())["install"]}
    assert {"xctl-probe-ebpf", "cffi", "msgspec", "typer"} <= installed, installed


def test_describe_from_the_wheel_names_the_versions_built(wheel_venv):
    run = subprocess.run(hidden([SYSTEM_PYTHON, str(wheel_venv / "bin" / "xctl-probe-ebpf"),
                                 "describe"]), capture_output=True, text=True, check=True)
    built = (ROOT / "build" / "out" / "vendor" / "prefix" / "VERSIONS").read_text()
    assert json.loads(run.stdout)["vendored"] == dict(
        line.split(" ", 1) for line in built.splitlines())


def assert_exact_and_owned(run, label):
    """Every line contract-checked and owned by the right process (none by
    another, at least 99 % named), Σsegs equal to the kernel's counter."""
    owners = owner_share(run, "xpt-client", "xpt-server")
    print(f"{label}: {len(owners.events)} lines, {len(owners.right)} right owners, "
          f"{len(owners.wrong)} wrong, {len(owners.unnamed)} none")
    assert run.rc == 0 and owners.events
    assert owners.wrong == [] and owners.mostly_named()
    check_segs(sum(e["segs"] for e in owners.events), run.delta, run.err_layout)


def test_from_the_wheel_as_xctl_runs_it_with_nothing_else(wheel_venv):
    run = run_pair(port=9650, seconds=3.0, probe={
        "prefix": hidden([]), "interpreter": SYSTEM_PYTHON,
        "script": wheel_venv / "bin" / "xctl-probe-ebpf"})
    assert_exact_and_owned(run, "from the wheel")


BULLSEYE = ROOT / "build" / "out" / "bullseye"


@pytest.fixture(scope="module")
def bullseye(wheel):
    """Debian 11 (glibc 2.31, Python 3.9; make test-wheel makes it) with the
    wheel and its dependencies as pip picks them for Python 3.9, in /opt/xpt."""
    assert (BULLSEYE / ".built").is_file(), "run make test-wheel, which makes it"
    target = BULLSEYE / "opt" / "xpt"
    subprocess.run(["rm", "-rf", str(target)], check=True)
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "--target", str(target),
         "--python-version", "3.9", "--only-binary=:all:", "--platform", "manylinux_2_28_x86_64",
         "--platform", "manylinux_2_17_x86_64", "--platform", "manylinux2014_x86_64",
         str(wheel)], check=True)
    return ["unshare", "--mount", "--propagation", "private", "sh", "-c",
            f"mount --rbind /proc '{BULLSEYE}/proc' && mount --rbind /sys '{BULLSEYE}/sys' && "
            f"exec chroot '{BULLSEYE}' env PYTHONPATH=/opt/xpt \"$@\"", "sh"]


def test_an_older_userland_has_python_39_glibc_231_and_nothing_to_build_with(bullseye):
    out = subprocess.run(
        [*bullseye, "sh", "-c", "python3 --version; ldd --version | head -n 1; "
         "ls /usr/include 2>/dev/null | wc -l; "
         "find / -xdev -path /opt/xpt -prune -o \\( -name 'libelf*.so*' -o -name 'libbpf*' \\) "
         "-print | wc -l; command -v gcc cc clang | wc -l"],
        capture_output=True, text=True, check=True).stdout.splitlines()
    assert out[0].startswith("Python 3.9.") and out[1].endswith(" 2.31"), out
    assert out[2:] == ["0", "0", "0"], out


def test_from_the_wheel_on_python_39_and_glibc_231(bullseye):
    run = run_pair(port=9655, seconds=3.0, probe={
        "prefix": bullseye, "interpreter": "python3",
        "script": Path("/opt/xpt/bin/xctl-probe-ebpf")})
    assert_exact_and_owned(run, "Python 3.9, glibc 2.31")
