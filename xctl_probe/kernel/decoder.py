"""Raw ring-buffer records into msgspec Structs.

Nothing here restates the layout: it is read from ``struct xp_record`` as cffi
parsed it out of bpf/record.h, the header the BPF program is compiled with.
Both the unpacking format and the ``Record`` Struct are derived from it, and
tests/unit/test_layout.py holds them against the BTF inside the BPF object.
"""

import struct
from typing import List, Optional, Sequence, Tuple

import msgspec

from .binding import ffi, lib

# cffi reports fixed-width typedefs by their standard names.
_STRUCT_CODES = {
    "uint8_t": "B",
    "uint16_t": "H",
    "uint32_t": "I",
    "int32_t": "i",
    "uint64_t": "Q",
}


def _derive_layout(only: Optional[Sequence[str]] = None
                   ) -> Tuple[struct.Struct, List[Tuple[str, type]]]:
    ctype = ffi.typeof("struct xp_record")
    codes = ["="]  # native byte order, no implicit alignment: gaps are written out
    fields = []
    end = 0
    for name, field in ctype.fields:
        if only is not None and name not in only:
            continue
        if field.offset > end:
            codes.append(f"{field.offset - end}x")
        if field.type.kind == "array":
            codes.append(f"{field.type.length}s")
            fields.append((name, bytes))
        else:
            codes.append(_STRUCT_CODES[field.type.cname])
            fields.append((name, int))
        end = field.offset + ffi.sizeof(field.type)
    size = ffi.sizeof(ctype)
    if size > end:
        codes.append(f"{size - end}x")
    return struct.Struct("".join(codes)), fields


RECORD_STRUCT, RECORD_FIELDS = _derive_layout()


def fields_struct(names: Sequence[str]) -> struct.Struct:
    """Unpacks only ``names`` of each record, as plain tuples: the per-record
    path reads what changes per record and leaves the rest (addresses) for the
    first record of a flow. ``names`` must be in layout order, so that a
    caller's unpacking of the tuple matches."""
    unpacker, fields = _derive_layout(names)
    if [name for name, _ in fields] != list(names):
        raise ValueError(f"{names} are not fields of struct xp_record in layout order")
    return unpacker

Record = msgspec.defstruct("Record", RECORD_FIELDS, module=__name__, gc=False)
Record.__doc__ = "One struct xp_record, field for field (see bpf/record.h)."

SOURCE_RETRANSMIT = lib.XP_SRC_RETRANSMIT
SOURCE_SYNACK = lib.XP_SRC_SYNACK
SOURCE_CLOSE = lib.XP_SRC_CLOSE
SOURCE_DROP = lib.XP_SRC_DROP
SOURCE_OWNER = lib.XP_SRC_OWNER
FLAG_ERR_LAYOUT = lib.XP_F_ERR_LAYOUT
FLAG_HISTORY = lib.XP_F_HISTORY
FLAG_UNDO_MARKER = lib.XP_F_UNDO_MARKER
FLAG_NOT_LOSS = lib.XP_F_NOT_LOSS
FLAG_COUNTED = lib.XP_F_COUNTED


def record_at(raw, i: int) -> Record:
    """Record ``i`` of a batch of raw records, every field."""
    return Record(*RECORD_STRUCT.unpack_from(raw, i * RECORD_STRUCT.size))
