"""The cffi binding: libbpf, plus struct xp_record parsed from bpf/record.h.

Importing it from a tree that was never built, or from a broken install,
raises BadInstall with what to do, instead of an ImportError traceback.
"""

from ..errors import BadInstall

__all__ = ["ffi", "lib"]

try:
    from .._libbpf import ffi, lib
except ImportError as exc:
    raise BadInstall(
        f"the libbpf binding cannot be loaded ({exc}); reinstall the package (make install)"
    ) from None

# libbpf would print to stderr, which under xctl is a pipe nobody reads.
lib.xp_capture_libbpf_log()
