"""setuptools glue the declarative pyproject.toml cannot express: the cffi
extension (cffi_modules) and compiling the BPF object into the package."""

import sys
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

sys.path.insert(0, str(Path(__file__).resolve().parent / "build"))
from bpf_object import compile_objects  # noqa: E402


class BuildPyWithBpfObject(build_py):
    def run(self):
        super().run()
        compile_objects(Path(self.build_lib) / "xctl_probe")


setup(
    cffi_modules=["build/libbpf_ffi.py:ffi"],
    cmdclass={"build_py": BuildPyWithBpfObject},
    scripts=["bin/xctl-probe-ebpf"],
    options={"bdist_wheel": {"py_limited_api": "cp39"}},
)
