"""``describe``: what this probe is on this kernel, as one JSON document: its
version, the libraries a wheel was built with, the tracepoint layout CO-RE
chose, its hooks, and the event's JSON Schema, generated from the msgspec
Struct the lines are encoded from."""

from pathlib import Path
from typing import Dict, Optional

import msgspec

from .. import __version__
from ..kernel.loader import LoadedProbe
from ..kernel.objects import VENDORED
from ..meaning.event import EVENT_TYPE, TransportDrop


def vendored() -> Optional[Dict[str, str]]:
    """What build/vendor.sh built into a wheel ("libbpf 1.1.2-0+deb12u1" a line);
    None for a local build, which links the system's libbpf."""
    try:
        lines = VENDORED.read_text().splitlines()
    except FileNotFoundError:
        return None
    return dict(line.split(" ", 1) for line in lines if line.strip())


def describe(object_path: Path) -> bytes:
    with LoadedProbe(object_path, attach=False) as probe:
        document = {
            "name": "xctl-probe-ebpf",
            "version": __version__,
            "vendored": vendored(),
            "event_type": EVENT_TYPE,
            "layout": {
                "tracepoint": "tcp:tcp_retransmit_skb",
                "err_argument": probe.err_layout,
                "description": probe.layout,
            },
            "hooks": probe.hooks,
            "sockets": {"helpers": probe.sock_helpers, "description": probe.sockets},
            "schema": msgspec.json.schema(TransportDrop),
        }
    return msgspec.json.format(msgspec.json.encode(document), indent=2)
