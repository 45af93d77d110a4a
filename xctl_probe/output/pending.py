"""Lines waiting for a reader that fell behind, one per flow.

While stdout's reader (xctl) keeps up, every record has a line of its own.
When it falls behind, the probe keeps draining the kernel and the lines it
cannot write yet wait here: a new line for a flow (its entity, in its
network namespace: what xctl tells apart; its drops of one reason apart from
its retransmissions, and those that are no loss apart from those that are)
that already has one waiting is merged into it, ``segs``
summed (so Σsegs stays exact), ``count`` the records merged, everything else
(time, value, state, kind) the newest.
The line rate drops to what the reader takes and memory stays bounded: past
``max_flows`` waiting flows a new flow's line is not kept but counted in
``dropped``, which the writer reports in-band as ``lost``.
"""

from typing import Dict, List, Optional, Tuple

import msgspec

from ..meaning.event import TransportDrop

# A waiting line is about 1 KiB with its strings: 16 MiB at most.
MAX_FLOWS = 16384


class PendingLines:
    def __init__(self, max_flows: int = MAX_FLOWS):
        self._lines: List[TransportDrop] = []
        self._index: Dict[Tuple[str, int, Optional[str], Optional[bool]], int] = {}
        self._max_flows = max_flows
        self.dropped = 0

    def __len__(self) -> int:
        return len(self._lines)

    def add(self, line: TransportDrop) -> None:
        # A flow's drops of each reason are lines apart from its retransmissions,
        # and a value that counts losses never takes the place of one that does not.
        flow = (line.entity_id, line.netns, line.reason, line.loss)
        at = self._index.get(flow)
        if at is not None:
            waiting = self._lines[at]
            self._lines[at] = msgspec.structs.replace(
                line, segs=waiting.segs + line.segs,
                count=(waiting.count or 1) + (line.count or 1))
            return
        if len(self._lines) >= self._max_flows:
            self.dropped += line.count or 1
            return
        self._index[flow] = len(self._lines)
        self._lines.append(line)

    def take(self) -> List[TransportDrop]:
        """Everything waiting, oldest flow first; the queue starts empty again."""
        lines, self._lines, self._index = self._lines, [], {}
        return lines
