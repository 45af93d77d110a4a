"""Compiles the BPF programs into the objects shipped inside the package:
bpf/probe.bpf.c (the probe, CO-RE) and bpf/bench.bpf.c (the bench's
synthetic records).

clang is needed here, at build time only: nodes get the finished object, and
libbpf relocates it against their kernel's BTF when it loads.
"""

import os
import shutil
import subprocess
import sysconfig
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OBJECTS = {"probe.bpf.o": ROOT / "bpf" / "probe.bpf.c", "bench.bpf.o": ROOT / "bpf" / "bench.bpf.c"}

# bpf_tracing.h needs the target's name for its register macros.
TARGET_ARCH = {"x86_64": "x86", "aarch64": "arm64", "ppc64le": "powerpc", "s390x": "s390"}


def _multiarch_include() -> list:
    """The host's <asm/types.h> lives in a multiarch directory on Debian."""
    try:
        triplet = subprocess.run(
            ["gcc", "-print-multiarch"], capture_output=True, text=True, check=True
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return []
    path = Path("/usr/include") / triplet
    return ["-I", str(path)] if triplet and path.is_dir() else []


def compile_objects(out_dir: Path) -> None:
    for name, source in OBJECTS.items():
        compile_object(source, out_dir / name)


def compile_object(source: Path, out: Path) -> None:
    clang = os.environ.get("CLANG", "clang")
    # The build's target: a cross build names it in _PYTHON_HOST_PLATFORM,
    # which sysconfig honours ("linux-aarch64").
    machine = sysconfig.get_platform().split("-", 1)[-1]
    arch = TARGET_ARCH.get(machine)
    if arch is None:
        raise SystemExit(f"bpf_object: no BPF target arch known for {machine}")
    out.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        [clang, "-g", "-O2", "-target", "bpf", f"-D__TARGET_ARCH_{arch}",
         *_multiarch_include(), "-Wall", "-Werror", "-c", str(source), "-o", str(out)],
        check=True,
    )
    # DWARF is for humans; libbpf needs only the .BTF and .BTF.ext sections.
    strip = shutil.which(os.environ.get("LLVM_STRIP", "llvm-strip"))
    if strip:
        subprocess.run([strip, "-g", str(out)], check=True)


if __name__ == "__main__":
    compile_objects(ROOT / "build" / "out")
