"""What the probe needs before it loads anything, each tested in one place.

The loader fails with the ProbeError of the first one unmet; ``check``
reports every one as a finding. Both ask here, so the test, the message and
the exit code of each cannot drift apart. ``check`` words a finding shorter
than the error, and that wording lives beside the error's.

Light on imports: no binding, so ``check`` can report a node where the
binding cannot load.
"""

import os
from pathlib import Path
from typing import NamedTuple, Optional

from ..errors import BadInstall, NoBTF, NoPrivilege, ProbeError
from . import capabilities

# The running kernel's BTF: CO-RE relocates against it, and the drop reasons
# are named from it.
KERNEL_BTF = Path("/sys/kernel/btf/vmlinux")


class Unmet(NamedTuple):
    error: ProbeError  # what the probe fails with, and its exit code
    finding: str  # what ``check`` says of it


def probe_object(object_path: Path) -> Optional[Unmet]:
    if Path(object_path).is_file():
        return None
    # ``check`` finds this one by loading, and says the error itself.
    error = BadInstall(f"BPF object {object_path} not found; reinstall the package "
                       "(make install) or pass the right --object")
    return Unmet(error, str(error))


def privileges(mask: int) -> Optional[Unmet]:
    """Whether the capability mask ``mask`` may load and attach the programs."""
    if capabilities.can_load(mask):
        return None
    return Unmet(NoPrivilege(
        "loading BPF programs needs root, or CAP_BPF and CAP_PERFMON "
        "(uid %d has neither); run it as root or grant those capabilities" % os.geteuid()
    ), "cannot load BPF programs")


def kernel_btf() -> Optional[Unmet]:
    if KERNEL_BTF.is_file():
        return None
    return Unmet(NoBTF(
        f"this kernel exposes no BTF ({KERNEL_BTF} is missing); the probe needs a "
        "kernel built with CONFIG_DEBUG_INFO_BTF=y (most distributions since 2020)"
    ), f"{KERNEL_BTF} is missing: the kernel needs CONFIG_DEBUG_INFO_BTF=y")


def require(object_path: Path) -> None:
    """Raises the error of the first precondition unmet, in the order a person
    fixes them: the install, then the privilege, then the kernel."""
    unmet = (probe_object(object_path) or privileges(capabilities.effective())
             or kernel_btf())
    if unmet is not None:
        raise unmet.error
