"""setuptools glue the declarative pyproject.toml cannot express: the cffi
extension (cffi_modules), compiling the BPF object into the package, and, in
the wheel, the versions of the libraries build/vendor.sh built for it."""

import os
import shutil
import sys
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

sys.path.insert(0, str(Path(__file__).resolve().parent / "build"))
from bpf_object import compile_objects  # noqa: E402


class BuildPyWithBpfObject(build_py):
    def run(self):
        super().run()
        package = Path(self.build_lib) / "xctl_probe"
        compile_objects(package)
        vendor = os.environ.get("XCTL_PROBE_VENDOR")
        if vendor:
            shutil.copyfile(Path(vendor) / "VERSIONS", package / "VENDORED")


setup(
    cffi_modules=["build/libbpf_ffi.py:ffi"],
    cmdclass={"build_py": BuildPyWithBpfObject},
    scripts=["bin/xctl-probe-ebpf"],
    options={"bdist_wheel": {"py_limited_api": "cp39"}},
)
