"""What the drop program is told before it is loaded: each drop reason's
class (enum xp_drop_class in bpf/record.h), by the running kernel's numbers,
and whether the drops that are no loss are reported too. It goes into the
object's read-only section .rodata.drops (struct xp_drop_policy), so it
cannot change once the program runs; the classes themselves come from the
table in xctl_probe/meaning/drop_classes.py. A reason --reason did not ask
for is NOT_ASKED: the program returns on it at once."""

from dataclasses import dataclass, field
from typing import Mapping

from .binding import ffi, lib

LOSS = lib.XP_DROP_LOSS
NOT_LOSS = lib.XP_DROP_NOT_LOSS
NOT_LOSS_AFTER_FIN = lib.XP_DROP_NOT_LOSS_AFTER_FIN
NOT_ASKED = lib.XP_DROP_NOT_ASKED
# Reasons the policy classifies, 0 up to this; those past it are all of one class.
TABLE = lib.XP_DROP_REASONS
SECTION = ".rodata.drops"
# The map of the drop records the program put in the ring (struct xp_drop_counts).
COUNTS_MAP = "drop_records"


@dataclass(frozen=True)
class DropPolicy:
    """``classes``: {reason number: class}; a reason it lacks is of class
    ``beyond`` (a loss unless --reason asked for others)."""

    classes: Mapping[int, int] = field(default_factory=dict)
    report_all: bool = False
    beyond: int = LOSS

    def packed(self) -> bytes:
        policy = ffi.new("struct xp_drop_policy *")
        policy.report_all = self.report_all
        policy.beyond = self.beyond
        for code, drop_class in self.classes.items():
            if 0 <= code < len(policy.classes):
                policy.classes[code] = drop_class
        return bytes(ffi.buffer(policy))
