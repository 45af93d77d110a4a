"""build/vendor.sh, the build of the libraries the wheels carry, stops at the
first step that fails, names it, and runs nothing in the directory it was
started from. Real failures: a source version the mirror does not have, and
a compiler that cannot run (an interpreter without ziglang). The downloads
are real too: these tests need root (apt), Debian's mirror and dpkg-dev (make
test-wheel runs them, after make wheel)."""

import os
import platform
import subprocess
import sys
import sysconfig
import time
from pathlib import Path

import pytest

from lab.marks import requires_root

pytestmark = [requires_root, pytest.mark.wheel]

ROOT = Path(__file__).resolve().parents[2]
VENDOR = ROOT / "build" / "vendor.sh"
LISTED = ROOT / "build" / "vendor-sources.txt"
# Where a build that ran in the wrong directory would leave its traces:
# every file of the checkout but git's, the build's outputs and caches.
SKIPPED = {".git", "out", "__pycache__", ".pytest_cache"}


def listed() -> dict:
    rows = (line.split() for line in LISTED.read_text().splitlines())
    return {row[0]: row[1] for row in rows if row and not row[0].startswith("#")}


def unfetchable(package: str = "zlib") -> str:
    """The list with a package's version replaced by one no suite has."""
    return "".join(f"{package} 1:0.0-0\n" if line.split()[:1] == [package] else line
                   for line in LISTED.read_text().splitlines(keepends=True))


def checkout_state() -> dict:
    state = {}
    for path, dirs, files in os.walk(ROOT):
        dirs[:] = [d for d in dirs if d not in SKIPPED
                   and not (Path(path) == ROOT / ".venv" and d in ("lib", "include", "bin"))]
        for name in files:
            found = os.lstat(os.path.join(path, name))
            state[os.path.join(path, name)] = (found.st_size, found.st_mtime_ns)
    return state


def vendor(out: Path, python: str, sources: str, *flags: str, listed: Path = None):
    listed = listed or out.parent / "sources.txt"
    listed.write_text(sources)
    before = checkout_state()
    started = time.monotonic()
    run = subprocess.run(["bash", str(VENDOR), *flags, str(out), python], cwd=ROOT,
                         env={**os.environ, "VENDOR_SOURCES": str(listed)},
                         capture_output=True, text=True, timeout=300)
    seconds = time.monotonic() - started
    print(run.stderr)
    assert checkout_state() == before, "the build changed files of the checkout"
    return run, seconds


# The other architecture make wheel builds for: a cross build from here.
FOREIGN = {"x86_64": "aarch64", "aarch64": "x86_64"}[platform.machine()]


def bare_python(tmp_path) -> str:
    """An interpreter of the same release without ziglang: the build stops at
    its compilers."""
    bare = tmp_path / "bare"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(bare)], check=True)
    return str(bare / "bin" / "python")


def steps_started(stderr: str) -> list:
    return [line.split()[1] for line in stderr.splitlines()
            if line.startswith("vendor: ") and len(line.split()) == 2]


def test_a_source_the_mirror_does_not_have_stops_the_build_at_once(tmp_path):
    run, seconds = vendor(tmp_path / "out", sys.executable, unfetchable(), "--exact")
    assert run.returncode == 1
    assert seconds < 60, seconds
    assert "no version of zlib could be fetched (tried: none)" in run.stderr
    assert run.stderr.rstrip().splitlines()[-1].startswith("vendor: step 'fetch-zlib' failed")
    assert steps_started(run.stderr) == ["apt-sources", "fetch-zlib"]
    assert not (tmp_path / "out" / "src" / "zlib").exists()
    assert not (tmp_path / "out" / "prefix" / ".built").exists()


def test_a_step_that_fails_stops_the_build_before_the_next(tmp_path):
    """A listed version that no suite has gives way to the newest that
    downloads (Debian's security suite lists zlib versions whose files this
    mirror does not serve: the failure that started this), then a compiler
    that cannot run ends the build at that step: zlib's configure and make
    never run, here or anywhere."""
    python = bare_python(tmp_path)
    assert subprocess.run([python, "-c", "import ziglang"], capture_output=True).returncode
    run, seconds = vendor(tmp_path / "out", python, unfetchable())
    assert run.returncode == 1
    assert seconds < 120, seconds
    took = [line for line in run.stderr.splitlines() if line.startswith("vendor: took ")]
    assert len(took) == 3 and took[0].startswith("vendor: took zlib "), took
    assert took[0].endswith(": the listed version (1:0.0-0) could not be fetched"), took
    assert took[1:] == [f"vendor: took {name} {listed()[name]}, as listed"
                        for name in ("elfutils", "libbpf")]
    assert "No module named ziglang" in run.stderr
    assert run.stderr.rstrip().splitlines()[-1].startswith("vendor: step 'compilers' failed")
    assert steps_started(run.stderr) == ["apt-sources", "fetch-zlib", "fetch-elfutils",
                                         "fetch-libbpf", "compilers"]
    assert not (tmp_path / "out" / "prefix" / "lib" / "libz.a").exists()


def test_a_build_for_another_architecture_takes_that_architectures_python_headers(tmp_path):
    """The extension's cross build needs the target's pyconfig.h, which this
    machine's Python cannot give: Debian's package of the target architecture
    is fetched (the listed version, else another, said so), and Python.h,
    with the prefix ahead of the build interpreter's headers as libbpf_ffi.py
    puts it, reaches the target's pyconfig.h and never this interpreter's."""
    release = sysconfig.get_python_version()
    package = f"libpython{release}-dev"
    run, _ = vendor(tmp_path / "out", bare_python(tmp_path), unfetchable(package),
                    "--arch", FOREIGN)
    assert run.returncode == 1
    assert steps_started(run.stderr) == ["apt-sources", "fetch-zlib", "fetch-elfutils",
                                         "fetch-libbpf", "python-headers", "compilers"]
    took = [line for line in run.stderr.splitlines() if line.startswith(f"vendor: took {package}")]
    assert len(took) == 1 and took[0].endswith(
        ": the listed version (1:0.0-0) could not be fetched"), run.stderr
    include = tmp_path / "out" / "prefix" / "include"
    source = tmp_path / "python.c"
    source.write_text("#include <Python.h>\n")
    headers = subprocess.run(
        [sys.executable, "-m", "ziglang", "cc", "-target", f"{FOREIGN}-linux-gnu", "-E", "-H",
         "-I", str(include), "-I", str(include / f"python{release}"),
         "-I", sysconfig.get_config_var("INCLUDEPY"), str(source), "-o", os.devnull],
        capture_output=True, text=True, check=True).stderr
    configs = {line.split()[-1] for line in headers.splitlines() if line.endswith("/pyconfig.h")}
    assert configs == {str(include / f"python{release}" / "pyconfig.h"),
                       str(include / f"{FOREIGN}-linux-gnu" / f"python{release}" / "pyconfig.h")}, \
        configs


def test_an_unknown_architecture_is_refused(tmp_path):
    run, _ = vendor(tmp_path / "out", sys.executable, LISTED.read_text(), "--arch", "riscv64")
    assert run.returncode == 2
    assert run.stderr.strip().startswith("usage: build/vendor.sh"), run.stderr
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("built, arch", [("vendor", "aarch64"), ("vendor-aarch64", "x86_64")],
                         ids=["x86_64-build-asked-for-aarch64", "aarch64-build-asked-for-x86_64"])
def test_a_build_for_one_architecture_is_not_taken_for_another(tmp_path, built, arch):
    """make wheel's own builds, each asked for the other's architecture."""
    out = ROOT / "build" / "out" / built
    assert (out / "prefix" / ".built").is_file(), "run make wheel first"
    versions = (out / "prefix" / "VERSIONS").read_bytes()
    run, _ = vendor(out, sys.executable, LISTED.read_text(), "--arch", arch,
                    listed=tmp_path / "sources.txt")
    assert run.returncode == 1
    assert run.stderr.strip() == (f"vendor: {out} holds a build for another target than "
                                  f"{arch}-linux-gnu.2.28"), run.stderr
    assert (out / "prefix" / "VERSIONS").read_bytes() == versions
