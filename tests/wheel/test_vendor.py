"""build/vendor.sh, the build of the libraries the wheel carries, stops at the
first step that fails, names it, and runs nothing in the directory it was
started from. Real failures: a source version the mirror does not have, and
a compiler that cannot run (an interpreter without ziglang). The downloads
are real too: these tests need root (apt), Debian's mirror and dpkg-dev (make
test-wheel runs them)."""

import os
import subprocess
import sys
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


def unfetchable_zlib() -> str:
    """The list with zlib's version replaced by one no suite has."""
    return "".join("zlib 1:0.0-0\n" if line.split()[:1] == ["zlib"] else line
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


def vendor(out: Path, python: str, sources: str, *flags: str):
    listed = out.parent / "sources.txt"
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


def steps_started(stderr: str) -> list:
    return [line.split()[1] for line in stderr.splitlines()
            if line.startswith("vendor: ") and len(line.split()) == 2]


def test_a_source_the_mirror_does_not_have_stops_the_build_at_once(tmp_path):
    run, seconds = vendor(tmp_path / "out", sys.executable, unfetchable_zlib(), "--exact")
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
    bare = tmp_path / "bare"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(bare)], check=True)
    python = str(bare / "bin" / "python")
    assert subprocess.run([python, "-c", "import ziglang"], capture_output=True).returncode
    run, seconds = vendor(tmp_path / "out", python, unfetchable_zlib())
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
