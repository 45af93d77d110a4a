"""What the build puts beside the package's modules, found from here: the
compiled BPF objects (build/bpf_object.py) and, in a wheel, the versions of
the libraries build/vendor.sh built (absent from a local build).

Light on imports: the command line takes its default ``--object`` from here
without loading the binding."""

from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent.parent
PROBE_OBJECT = PACKAGE_DIR / "probe.bpf.o"
BENCH_OBJECT = PACKAGE_DIR / "bench.bpf.o"
VENDORED = PACKAGE_DIR / "VENDORED"
