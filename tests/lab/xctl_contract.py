"""xctl's event contract, checked strictly, as xctl's own parser applies it.

From the shared contract: UTF-8 JSON object per line; ts a u64 integer (no
float, string or negative); event_type one of xctl's names; entity_id a
string; job_id string or null; pid a u32 integer or null; value a string
(never null); node_id never present. On top, what this probe promises: a
flow entity_id (never network-pid-N), no pid 0, and a numeric value.
"""

import json
import math
import re

EVENT_TYPES = {
    "compute.util", "compute.mem", "transport.bw", "transport.drop", "storage.iops",
    "storage.qdepth", "process.state", "error.hw", "error.net", "topo.link_down",
    "intent.run", "action.exec",
}
FLOW_ENTITY = re.compile(r"^network-(?!pid-)[0-9a-f.:]+-[0-9a-f.:]+-\d{1,5}-\d{1,5}$")


class ContractError(AssertionError):
    pass


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def check_line(raw: bytes) -> dict:
    """The parsed event, or ContractError saying which rule the line breaks."""
    if not raw.endswith(b"\n") or b"\n" in raw[:-1]:
        raise ContractError(f"not one newline-terminated line: {raw!r}")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ContractError(f"invalid UTF-8 (fatal for xctl): {exc}") from None
    event = json.loads(text)
    if not isinstance(event, dict):
        raise ContractError(f"not a JSON object: {text!r}")
    ts = event.get("ts")
    if not _is_int(ts) or not 0 <= ts < 2**64:
        raise ContractError(f"ts must be a u64 integer: {ts!r}")
    if event.get("event_type") not in EVENT_TYPES:
        raise ContractError(f"unknown event_type: {event.get('event_type')!r}")
    if not isinstance(event.get("entity_id"), str):
        raise ContractError(f"entity_id must be a string: {event.get('entity_id')!r}")
    if "job_id" in event and not (event["job_id"] is None or isinstance(event["job_id"], str)):
        raise ContractError(f"job_id must be a string or null: {event['job_id']!r}")
    if "pid" in event and event["pid"] is not None:
        if not _is_int(event["pid"]) or not 0 <= event["pid"] < 2**32:
            raise ContractError(f"pid must be a u32 integer: {event['pid']!r}")
    if not isinstance(event.get("value"), str):
        raise ContractError(f"value must be a string: {event.get('value')!r}")
    if "node_id" in event:
        raise ContractError("node_id must never be sent")
    return event


def check_probe_line(raw: bytes) -> dict:
    """check_line, plus what this probe promises beyond xctl's minimum."""
    event = check_line(raw)
    if event["event_type"] != "transport.drop":
        raise ContractError(f"unexpected event_type {event['event_type']!r}")
    if not FLOW_ENTITY.match(event["entity_id"]):
        raise ContractError(f"entity_id is not a flow: {event['entity_id']!r}")
    if event.get("pid") == 0:
        raise ContractError("pid 0 must never be sent")
    if event.get("kind") == "drop":
        if not event["value"].isdigit():
            raise ContractError(f"a drop's value is not a count: {event['value']!r}")
        return event
    rate = float(event["value"])
    if not math.isfinite(rate) or not 0 <= rate <= 100:
        raise ContractError(f"value is not a rate in percent: {event['value']!r}")
    return event


def network_stall_fires(events) -> bool:
    """xctl's network_stall rule as the shared contract describes it: some
    transport.drop with a numeric value >= 10, and some WaitsOn edge from a
    pid-N node (pid > 0) to a resource whose id starts with network- (and is
    not folded into the catch-all network node, as network-pid-* ids are)."""
    drops = [e for e in events if e.get("event_type") == "transport.drop"]
    high = any(float(e["value"]) >= 10 for e in drops)
    edge = any(
        isinstance(e.get("pid"), int) and e["pid"] > 0
        and e["entity_id"].startswith("network-") and not e["entity_id"].startswith("network-pid-")
        for e in drops
    )
    return high and edge
