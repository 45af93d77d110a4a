"""What the stream hands its lines to: JSONL for xctl (writer.py), and the
other ways a person or a scraper reads them, all behind one interface so the
stream itself never knows which."""

from typing import Callable, List, Protocol

from ..meaning.event import TransportDrop

# A batch's lines, as the line thread made them, before the sink sees them:
# those to keep (filters) ...
Keep = Callable[[List[TransportDrop]], List[TransportDrop]]
# ... and what else looks at them, with the kernel's count of records lost (metrics).
Tap = Callable[[List[TransportDrop], int], None]


class Sink(Protocol):
    lines: int  # lines delivered so far
    closed: bool  # the reader went away: nothing more can be delivered

    @property
    def lost(self) -> int:
        """Records lost so far, in the kernel or to the sink's own bound."""

    def put(self, lines: List[TransportDrop], lost_in_kernel: int) -> None:
        """One batch of lines, on the line thread; ``lost_in_kernel`` is the
        kernel's count of records it could not give."""

    def wait_written(self, timeout_s: float) -> bool:
        """Until every line handed over is delivered (or ``timeout_s``)."""

    def close(self, timeout_s: float) -> int:
        """Delivers what is waiting, for at most ``timeout_s``; the lines left undelivered."""
