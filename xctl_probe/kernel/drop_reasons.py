"""Why the kernel dropped a packet, in the running kernel's own words.

The kernel renumbers ``enum skb_drop_reason`` from release to release, so
the names are read at start-up from this kernel's BTF, never from a table
made elsewhere: ``SKB_DROP_REASON_NETFILTER_DROP`` becomes ``NETFILTER_DROP``.
A reason of another subsystem (the high 16 bits, SKB_DROP_REASON_SUBSYS_*)
is named by that subsystem's own enum when the kernel's BTF has it (its
members carry the subsystem's bits), else as ``<SUBSYSTEM>_<number>``.
"""

import errno
import os
from pathlib import Path
from typing import Dict, Iterator, Optional, Tuple

from ..errors import ProbeError
from .binding import ffi, lib

CORE_ENUM = "skb_drop_reason"
SUBSYS_ENUM = "skb_drop_reason_subsys"
# include/net/dropreason.h: SKB_DROP_REASON_SUBSYS_SHIFT.
SUBSYS_SHIFT = 16
_PREFIXES = ("SKB_DROP_REASON_", "SKB_")


def _members(btf_path: Path) -> Dict[str, Dict[int, str]]:
    """{enum name: {value: member name}} for the enums whose name has drop_reason."""
    room = 1024
    while True:
        out = ffi.new("struct xp_enum_member[]", room)
        count = lib.xp_btf_enum_members(bytes(btf_path), b"drop_reason", out, room)
        if count < 0:
            why = "not BTF this probe reads" if count == -errno.EPROTO else os.strerror(-count)
            raise ProbeError(f"cannot read the drop reasons from {btf_path}: {why}")
        if count <= room:
            break
        room = count
    enums: Dict[str, Dict[int, str]] = {}
    for member in out[0:count]:
        enum = ffi.string(member.type).decode(errors="replace")
        enums.setdefault(enum, {})[member.value] = ffi.string(member.name).decode(
            errors="replace")
    return enums


class DropReasons:
    def __init__(self, btf_path: Path):
        enums = _members(btf_path)
        self._core = {value: _strip(name) for value, name in enums.pop(CORE_ENUM, {}).items()}
        self._subsystems = {value: name.replace("SKB_DROP_REASON_SUBSYS_", "", 1)
                            for value, name in enums.pop(SUBSYS_ENUM, {}).items()}
        self._others: Dict[int, str] = {}
        for members in enums.values():
            for value, name in members.items():
                if value >> SUBSYS_SHIFT:
                    self._others.setdefault(value, name)
        self._names: Dict[int, str] = dict(self._core)

    @property
    def available(self) -> bool:
        """Whether this kernel names its drops (enum skb_drop_reason, Linux 5.17+)."""
        return bool(self._core)

    def __len__(self) -> int:
        return len(self._core)

    def items(self) -> Iterator[Tuple[int, str]]:
        """(number, name) of each core reason this kernel names."""
        return iter(self._core.items())

    def code(self, name: str) -> Optional[int]:
        """This kernel's number for the core reason ``name`` (NOT_SPECIFIED, ...)."""
        return next((code for code, known in self._core.items() if known == name), None)

    def name(self, code: int) -> str:
        known = self._names.get(code)
        if known is None:
            known = self._names[code] = self._describe(code)
        return known

    def _describe(self, code: int) -> str:
        subsystem = code >> SUBSYS_SHIFT
        if subsystem:
            if code in self._others:
                return self._others[code]
            label = self._subsystems.get(subsystem, f"SUBSYS_{subsystem}")
            return f"{label}_{code & ((1 << SUBSYS_SHIFT) - 1)}"
        return f"UNKNOWN_{code}"


def _strip(name: str) -> str:
    for prefix in _PREFIXES:
        if name.startswith(prefix):
            return name[len(prefix):]
    return name


def reported_reasons(btf_path: Path) -> Tuple[Optional[DropReasons], str]:
    """This kernel's drop reasons, and what to say of them; None with why
    when drops cannot be reported. The stream and ``check`` both ask here,
    so they cannot disagree: without reasons the probe reports
    retransmissions only, it does not fail."""
    try:
        reasons = DropReasons(btf_path)
    except ProbeError as exc:
        return None, str(exc)
    if not reasons.available:
        return None, "this kernel's skb:kfree_skb carries no drop reason (Linux 5.17+)"
    return reasons, f"{len(reasons)} drop reasons named by this kernel's BTF"
