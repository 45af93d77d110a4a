"""Struct layouts as BTF records them, read with bpftool."""

import json
import subprocess
from pathlib import Path
from typing import Dict, List, Tuple


def dump(path) -> Dict[int, dict]:
    out = subprocess.run(["bpftool", "-j", "btf", "dump", "file", str(path)],
                         capture_output=True, text=True, check=True).stdout
    return {t["id"]: t for t in json.loads(out)["types"]}


def _size(types: Dict[int, dict], type_id: int) -> int:
    t = types[type_id]
    while t["kind"] in ("TYPEDEF", "CONST", "VOLATILE"):
        t = types[t["type_id"]]
    if t["kind"] == "ARRAY":
        return t["nr_elems"] * _size(types, t["type_id"])
    return t["size"]


def struct_layout(path, name: str) -> Tuple[int, List[Tuple[str, int, int]]]:
    """(size, [(member, byte offset, byte size), ...]) of ``struct name``."""
    types = dump(path)
    for t in types.values():
        if t["kind"] == "STRUCT" and t["name"] == name:
            members = [(m["name"], m["bits_offset"] // 8, _size(types, m["type_id"]))
                       for m in t["members"]]
            return t["size"], members
    raise LookupError(f"no struct {name} in the BTF of {path}")


def has_struct(path, name: str) -> bool:
    return any(t["kind"] == "STRUCT" and t["name"] == name for t in dump(path).values())


def has_member(path, name: str, member: str) -> bool:
    """Whether ``struct name`` has a member ``member``."""
    return any(t["kind"] == "STRUCT" and t["name"] == name
               and any(m["name"] == member for m in t["members"]) for t in dump(path).values())


def kernel_names_drop_reasons() -> bool:
    """Whether the running kernel's BTF has enum skb_drop_reason (Linux
    5.17+): its name is in the BTF's strings."""
    return b"\0skb_drop_reason\0" in Path("/sys/kernel/btf/vmlinux").read_bytes()
