"""``describe``: what this probe is on this kernel, as one JSON document: its
version, the tracepoint layout CO-RE chose, its hooks, and the event's JSON
Schema, generated from the msgspec Struct the lines are encoded from."""

from pathlib import Path

import msgspec

from . import __version__
from .event import EVENT_TYPE, TransportDrop
from .loader import LoadedProbe


def describe(object_path: Path) -> bytes:
    with LoadedProbe(object_path, attach=False) as probe:
        document = {
            "name": "xctl-probe-ebpf",
            "version": __version__,
            "event_type": EVENT_TYPE,
            "layout": {
                "tracepoint": "tcp:tcp_retransmit_skb",
                "err_argument": probe.err_layout,
                "description": probe.layout,
            },
            "hooks": probe.hooks,
            "schema": msgspec.json.schema(TransportDrop),
        }
    return msgspec.json.format(msgspec.json.encode(document), indent=2)
