"""The probe's BPF programs as the kernel lists them (bpftool): loaded,
attached, and gone once the probe has exited; and a running probe's maps."""

import json
import subprocess
import time
from pathlib import Path
from typing import Dict, List, Optional, Set

from .btf import kernel_names_drop_reasons
from .waits import patient


def tracing_programs() -> Set[str]:
    """The tracing programs the probe loads on this kernel: its tracepoints'
    (the drop program's only where the kernel names its drops) and the socket
    holders' iterator (iter/task_file), which bpftool lists as tracing too."""
    names = {"xp_tcp_retransmit_skb", "xp_tcp_retransmit_synack", "xp_tcp_destroy_sock",
             "xp_inet_sock_set_state", "xp_socket_holders"}
    return names | {"xp_kfree_skb"} if kernel_names_drop_reasons() else names


def wait_attached_programs(count: Optional[int] = None, timeout: float = 60.0) -> List[dict]:
    """Waits, through bpftool only, until ``count`` programs of ours are
    attached, each with its link: by default all the tracing programs the
    probe loads. Loaded is not enough: the probe attaches after its load, and
    in a loaded emulated guest traffic started at the load ended before the
    attach."""
    count = len(tracing_programs()) if count is None else count
    deadline = time.monotonic() + patient(timeout)
    while time.monotonic() < deadline:
        linked = {link.get("prog_id") for link in json.loads(subprocess.run(
            ["bpftool", "-j", "link", "list"], capture_output=True, text=True,
            check=True).stdout)}
        programs = [p for p in our_programs()
                    if p.get("type") == "tracing" and p["id"] in linked]
        if len(programs) >= count:
            return programs
        time.sleep(0.05)
    raise TimeoutError(f"fewer than {count} xp_ tracing programs attached after {timeout} s")


def our_programs() -> List[dict]:
    """BPF programs of this probe now loaded in the kernel (their names start with xp_)."""
    out = subprocess.run(["bpftool", "-j", "prog", "list"], capture_output=True, text=True,
                         check=True).stdout
    return [p for p in json.loads(out) if p.get("name", "").startswith("xp_")]


def program_holders(prog_ids) -> List[str]:
    """'PID (comm)' of every process holding a descriptor of one of these
    programs, or of a link to one (their fdinfo names the prog_id)."""
    wanted = {str(i) for i in prog_ids}
    holders = set()
    for fdinfo in Path("/proc").glob("[0-9]*/fdinfo/*"):
        try:
            text = fdinfo.read_text()
        except OSError:  # the process or descriptor went away meanwhile
            continue
        for line in text.splitlines():
            key, _, value = line.partition(":")
            if key == "prog_id" and value.strip() in wanted:
                pid = fdinfo.parts[2]
                try:
                    comm = Path(f"/proc/{pid}/comm").read_text().strip()
                except OSError:
                    comm = "?"
                holders.add(f"{pid} ({comm})")
    return sorted(holders)


def wait_programs_gone(timeout: float = 10.0) -> None:
    """Until no program of ours is loaded any more.

    The kernel frees a tracing program only after a grace period once its
    last reference is gone, so it can stay listed for a moment after the
    probe has exited. One still listed after ``timeout`` is really held: the
    failure names the programs and the processes that hold them.
    """
    deadline = time.monotonic() + patient(timeout)
    while True:
        left = our_programs()
        if not left:
            return
        if time.monotonic() >= deadline:
            names = ", ".join(sorted(f"{p['name']} (id {p['id']})" for p in left))
            holders = ", ".join(program_holders(p["id"] for p in left)) or "no process"
            raise AssertionError(
                f"BPF programs left after {patient(timeout):g} s: {names}; held by {holders}")
        time.sleep(0.05)


def probe_map(pid: int, name: str) -> Dict[int, dict]:
    """{key: value} of the map ``name`` the process ``pid`` holds, as bpftool
    reads it (its BTF gives the values their fields). Other probes on the
    machine have a map of that name too: only the process's own descriptors count."""
    ids = set()
    for fdinfo in Path(f"/proc/{pid}/fdinfo").iterdir():
        for line in fdinfo.read_text().splitlines():
            if line.startswith("map_id:"):
                ids.add(line.split()[1])
    for map_id in sorted(ids):
        shown = json.loads(subprocess.run(["bpftool", "-j", "map", "show", "id", map_id],
                                          capture_output=True, text=True, check=True).stdout)
        if shown["name"] == name:
            dump = json.loads(subprocess.run(["bpftool", "-j", "map", "dump", "id", map_id],
                                             capture_output=True, text=True, check=True).stdout)
            # A global-data map's one entry comes without a key.
            return {entry["formatted"].get("key", 0): entry["formatted"]["value"]
                    for entry in dump}
    raise LookupError(f"process {pid} holds no map {name}")
