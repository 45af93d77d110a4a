"""The wheels that ship (make wheel), one for x86_64 and one for aarch64,
judged as a node would meet them: each read as a node's pip and loader would,
and this machine's installed into a fresh venv, then run as xctl runs it,
``python3 PATH`` with the system's python3, in a private mount namespace
where libbpf, libelf, the compilers and /usr/include are hidden. Run by make
test-wheel, after the wheels are built."""

import glob
import hashlib
import io
import json
import os
import platform
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

import pytest
from elftools.elf.dynamic import DynamicSection
from elftools.elf.elffile import ELFFile
from elftools.elf.gnuversions import GNUVerNeedSection

from lab.accounting import check_segs
from lab.marks import requires_root
from lab.scenarios import owner_share, run_pair

pytestmark = [requires_root, pytest.mark.wheel]

ROOT = Path(__file__).resolve().parents[2]
SYSTEM_PYTHON = "/usr/bin/python3"
# Each architecture's wheel, the ELF machine of its binaries and the
# directory build/vendor.sh built its libraries in.
ARCHS = {"x86_64": ("EM_X86_64", "vendor"), "aarch64": ("EM_AARCH64", "vendor-aarch64")}
HOST = platform.machine()
HIDDEN_FILES = ["/usr/lib/*/libbpf.so*", "/usr/lib/*/libelf.so*", "/usr/lib/*/libelf-*.so",
                "/usr/lib/*/libbpf.a", "/usr/lib/*/libelf.a", "/usr/bin/gcc*", "/usr/bin/cc",
                "/usr/bin/c++", "/usr/bin/g++*", "/usr/bin/clang*", "/usr/bin/*-linux-gnu-gcc*",
                "/usr/bin/ld", "/usr/bin/ld.bfd", "/usr/bin/ld.gold"]
HIDDEN_DIRS = ["/usr/include", "/usr/lib/gcc", "/usr/lib/llvm-*", "/usr/libexec/gcc"]


def tag(arch):
    return f"cp39-abi3-manylinux_2_28_{arch}"


def platforms(arch):
    """pip's --platform options for a node of that architecture."""
    return [option for plat in (f"manylinux_2_28_{arch}", f"manylinux_2_17_{arch}",
                                f"manylinux2014_{arch}") for option in ("--platform", plat)]


@pytest.fixture(scope="module")
def wheels():
    found = sorted(glob.glob(str(ROOT / "dist" / "*.whl")))
    by_arch = {arch: [Path(w) for w in found if w.endswith(f"-{tag(arch)}.whl")]
               for arch in ARCHS}
    assert len(found) == len(ARCHS) and all(len(w) == 1 for w in by_arch.values()), (
        f"one wheel for each of {list(ARCHS)} in dist/, found {found}: run make wheel")
    return {arch: w[0] for arch, w in by_arch.items()}


@pytest.fixture(scope="module")
def wheel(wheels):
    """The wheel of this machine's architecture, the one run here."""
    return wheels[HOST]


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


@pytest.mark.parametrize("arch", ARCHS)
def test_the_wheel_is_manylinux_2_28_abi3_and_carries_what_it_needs(wheels, arch):
    wheel = wheels[arch]
    show = subprocess.run([sys.executable, "-m", "auditwheel", "show", str(wheel)],
                          capture_output=True, text=True, check=True).stdout
    assert f'consistent with the following platform tag: "manylinux_2_28_{arch}"' in " ".join(
        show.split())
    names = subprocess.run([sys.executable, "-m", "zipfile", "-l", str(wheel)],
                           capture_output=True, text=True, check=True).stdout
    assert "xctl_probe/probe.bpf.o" in names and "xctl_probe/_libbpf.abi3.so" in names
    assert "xctl_probe/bench.bpf.o" in names
    assert "xctl_probe_ebpf.libs/libelf-" in names


def vendored(wheel) -> str:
    with zipfile.ZipFile(wheel) as archive:
        return archive.read("xctl_probe/VENDORED").decode()


@pytest.mark.parametrize("arch", ARCHS)
def test_the_wheel_names_the_library_versions_it_was_built_with(wheels, arch):
    built = vendored(wheels[arch])
    assert built == (ROOT / "build" / "out" / ARCHS[arch][1] / "prefix" / "VERSIONS").read_text()
    names = [line.split()[0] for line in built.splitlines()]
    assert names == ["zlib", "elfutils", "libbpf", "zig", "target"], built
    assert built.splitlines()[-1] == f"target {arch}-linux-gnu.2.28", built


def test_both_wheels_are_built_from_the_same_sources_and_carry_their_licences(wheels):
    """The versions differ in their target only, and each wheel carries the
    licences of the sources its own libraries were built from (pyproject.toml
    takes them from the x86_64 build for both)."""
    lines = {arch: vendored(wheel).splitlines() for arch, wheel in wheels.items()}
    assert lines["x86_64"][:-1] == lines["aarch64"][:-1], lines
    for arch, wheel in wheels.items():
        built = ROOT / "build" / "out" / ARCHS[arch][1] / "prefix" / "licenses"
        expected = {p.name: p.read_bytes() for p in built.iterdir()}
        with zipfile.ZipFile(wheel) as archive:
            carried = {Path(n).name: archive.read(n) for n in archive.namelist()
                       if ".dist-info/" in n and Path(n).name in expected}
        assert expected and carried == expected, (arch, sorted(carried), sorted(expected))


def test_both_wheels_carry_the_same_bpf_objects(wheels):
    """Each wheel's objects were compiled for its own target arch
    (build/bpf_object.py follows the build's platform): the same bytes in
    both mean the probe has nothing arch-bound in it, and one object serves
    both, as it loads on an arm64 kernel."""
    for name in ("probe.bpf.o", "bench.bpf.o"):
        digests = {}
        for arch, wheel in wheels.items():
            with zipfile.ZipFile(wheel) as archive:
                data = archive.read(f"xctl_probe/{name}")
            assert ELFFile(io.BytesIO(data)).header.e_machine == "EM_BPF", (arch, name)
            digests[arch] = hashlib.sha256(data).hexdigest()
        print(name, digests)
        assert len(set(digests.values())) == 1, (name, digests)


def glibc_versions(elf) -> set:
    section = next(s for s in elf.iter_sections() if isinstance(s, GNUVerNeedSection))
    return {aux.name for need, auxes in section.iter_versions() for aux in auxes
            if aux.name.startswith("GLIBC_")}


@pytest.mark.parametrize("arch", ARCHS)
def test_its_binaries_are_of_its_architecture_and_need_glibc_2_28_at_most(wheels, arch):
    """Read as a node's loader would: the extension and its libelf are built
    for the wheel's machine, ask glibc for nothing after 2.28, the extension
    needs only glibc and the libelf beside it, and exports its init alone."""
    with zipfile.ZipFile(wheels[arch]) as archive:
        binaries = {n: archive.read(n) for n in archive.namelist() if ".so" in Path(n).name}
    assert sorted(Path(n).parent.name for n in binaries) == ["xctl_probe",
                                                             "xctl_probe_ebpf.libs"], binaries
    for name, data in binaries.items():
        elf = ELFFile(io.BytesIO(data))
        assert elf.header.e_machine == ARCHS[arch][0], (name, elf.header.e_machine)
        newest = max(tuple(map(int, v[len("GLIBC_"):].split("."))) for v in glibc_versions(elf))
        assert newest <= (2, 28), (name, newest)
    extension = ELFFile(io.BytesIO(binaries["xctl_probe/_libbpf.abi3.so"]))
    dynamic = extension.get_section_by_name(".dynamic")
    assert isinstance(dynamic, DynamicSection)
    needed = sorted(t.needed for t in dynamic.iter_tags() if t.entry.d_tag == "DT_NEEDED")
    [libelf] = [n for n in binaries if n.startswith("xctl_probe_ebpf.libs/")]
    assert needed == sorted([Path(libelf).name, "libc.so.6", "libpthread.so.0"]), needed
    exported = {s.name for s in extension.get_section_by_name(".dynsym").iter_symbols()
                if s["st_info"]["bind"] == "STB_GLOBAL" and s["st_shndx"] != "SHN_UNDEF"}
    assert exported == {"PyInit__libbpf"}, exported


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


@pytest.mark.parametrize("arch", ARCHS)
@pytest.mark.parametrize("version", ["3.9", "3.14"])
def test_its_dependencies_resolve_for_python(wheels, arch, version, tmp_path):
    report = tmp_path / "report.json"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "--dry-run", "--ignore-installed",
         "--report", str(report), "--target", str(tmp_path / "t"), "--python-version", version,
         "--only-binary=:all:", *platforms(arch), str(wheels[arch])], check=True)
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
         "--python-version", "3.9", "--only-binary=:all:", *platforms(HOST), str(wheel)],
        check=True)
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


BULLSEYE_ARM64 = ROOT / "build" / "out" / "bullseye-arm64"
# The probe's object opened by the wheel's own libbpf and libelf (parsed, not
# loaded: QEMU's user mode passes no bpf() calls), with what it ran on.
OPEN_THE_PROBE = """
import json, platform
from pathlib import Path
import xctl_probe
from xctl_probe._libbpf import ffi, lib
path = str(Path(xctl_probe.__file__).parent / "probe.bpf.o").encode()
obj = lib.bpf_object__open_file(path, ffi.NULL)
assert obj != ffi.NULL, "bpf_object__open_file failed"
sections, prog = [], lib.bpf_object__next_program(obj, ffi.NULL)
while prog != ffi.NULL:
    sections.append(ffi.string(lib.bpf_program__section_name(prog)).decode())
    prog = lib.bpf_object__next_program(obj, prog)
lib.bpf_object__close(obj)
print(json.dumps({"machine": platform.machine(), "libc": platform.libc_ver()[1],
                  "python": platform.python_version(), "sections": sections}))
"""


def test_the_aarch64_wheel_opens_the_probe_on_python_39_and_glibc_231_of_arm64(wheels,
                                                                              wheel_venv):
    """Debian 11 for arm64 (make test-wheel makes it) with the aarch64 wheel
    and its dependencies as pip picks them for Python 3.9, run under
    qemu-aarch64-static, reads the same programs from the object as this
    machine's wheel does here."""
    assert (BULLSEYE_ARM64 / ".built").is_file(), "run make test-wheel, which makes it"
    target = BULLSEYE_ARM64 / "opt" / "xpt"
    subprocess.run(["rm", "-rf", str(target)], check=True)
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "--target", str(target),
         "--python-version", "3.9", "--only-binary=:all:", *platforms("aarch64"),
         str(wheels["aarch64"])], check=True)
    arm64 = subprocess.run(
        ["unshare", "--mount", "--propagation", "private", "sh", "-c",
         f"mount --rbind /proc '{BULLSEYE_ARM64}/proc' && "
         f"mount --rbind /sys '{BULLSEYE_ARM64}/sys' && exec chroot '{BULLSEYE_ARM64}' "
         "/usr/bin/qemu-aarch64-static /usr/bin/python3 -c \"$0\"", OPEN_THE_PROBE],
        env={**os.environ, "PYTHONPATH": "/opt/xpt"}, cwd="/", capture_output=True, text=True)
    assert arm64.returncode == 0, arm64.stderr
    # Away from the checkout, whose xctl_probe would come first.
    here = subprocess.run([str(wheel_venv / "bin" / "python"), "-c", OPEN_THE_PROBE], cwd="/",
                          capture_output=True, text=True)
    assert here.returncode == 0, here.stderr
    found, expected = json.loads(arm64.stdout), json.loads(here.stdout)
    print(found)
    assert (found["machine"], found["libc"], found["python"][:4]) == ("aarch64", "2.31", "3.9."), found
    assert found["sections"] == expected["sections"] and "tp_btf/tcp_retransmit_skb" in found[
        "sections"], (found, expected)
