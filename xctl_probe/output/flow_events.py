"""What a flow's lines share, kept by the line makers for each flow they know.

The event a flow's lines share (addresses, entity, owner) is made once per
flow; each line is that event with the record's own fields replaced. The
owner is asked again when a record names another task (a socket shared across
fork), in the next batch while the flow has none, and every OWNER_TTL_S, so
a process that changes its name or job shows it.
"""

from typing import Dict, Optional

from ..context.owners import Owner
from ..meaning.event import TransportDrop

OWNER_TTL_S = 10.0
# Later than any record of the batch that asked, earlier than the next batch.
_NEXT_BATCH = 1e-6
# A flow has few sets of facts (a state or two, a kind or two); past this
# many, something churns: start over rather than grow.
_MAX_FACTS = 64


class FlowEvents:
    """A flow's shared event, the task (and, for drops, the socket file) its
    owner was asked for, and when to ask again: after OWNER_TTL_S, or in the
    next batch if there was no owner. ``by_facts`` holds the shared event
    with state and kind (and a drop's reason) filled in, for each set of
    facts they derive from that the flow has had."""

    __slots__ = ("event", "owner", "tgid", "ino", "recheck_at", "by_facts")

    def __init__(self, event: TransportDrop, owner: Optional[Owner], tgid: int, asked_at: float,
                 ino: int = 0):
        self.event = event
        self.owner = owner
        self.by_facts: Dict[tuple, TransportDrop] = {}
        self.asked(tgid, asked_at, ino)

    def asked(self, tgid: int, asked_at: float, ino: int = 0) -> "FlowEvents":
        """Asked again for task ``tgid`` (and socket file ``ino``), the owner unchanged."""
        self.tgid = tgid
        self.ino = ino
        self.recheck_at = asked_at + (OWNER_TTL_S if self.owner is not None else _NEXT_BATCH)
        return self

    def keep(self, facts: tuple, event: TransportDrop) -> TransportDrop:
        """Keeps ``event`` as the shared event for ``facts``; returns it."""
        if len(self.by_facts) >= _MAX_FACTS:
            self.by_facts.clear()
        self.by_facts[facts] = event
        return event
