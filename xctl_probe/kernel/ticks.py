"""HZ, the kernel's tick rate: a socket's retransmission timeout and the time
of its last ACK are kept in jiffies, and a line gives them in milliseconds.

The kernel's own configuration says it (CONFIG_HZ), where the node has it:
``/boot/config-RELEASE`` or ``/proc/config.gz``, the files libbpf reads for
the same purpose. Elsewhere it is found from jiffies themselves: the kernel
starts them at INITIAL_JIFFIES, 300 s' worth before the 32-bit wrap
(include/linux/jiffies.h), and advances them HZ times a second of the
monotonic clock, so a single reading of jiffies at a known monotonic time
fits one of the rates a kernel can be built with, and no other.
"""

import gzip
import os
from typing import Callable, Iterable, List, Optional, Tuple

# Every CONFIG_HZ choice of kernel/Kconfig.hz and of the architectures with their own.
HZ_CHOICES = (24, 32, 48, 64, 100, 128, 200, 250, 256, 300, 500, 512, 1000, 1024, 1200)
JIFFIES_BITS = 31
# How far jiffies may stand from where HZ puts them: the tick starts a little
# late in boot. Measured: 0.2 s after 7 minutes of uptime, 0.26 s after 7
# hours (both clocks advance together; the offset stays). Wider slack would
# widen the span around 300 s of uptime where several HZ fit.
_SLACK_S = 2.0

# (low JIFFIES_BITS bits of jiffies, CLOCK_MONOTONIC ns of that reading)
Reading = Tuple[int, int]


def configured_hz(paths: Optional[Iterable[str]] = None) -> Optional[int]:
    """CONFIG_HZ from the running kernel's configuration, None if not on the node."""
    if paths is None:
        paths = (f"/boot/config-{os.uname().release}", "/proc/config.gz")
    for path in paths:
        try:
            opener = gzip.open if path.endswith(".gz") else open
            with opener(path, "rb") as config:
                for line in config:
                    if line.startswith(b"CONFIG_HZ="):
                        return int(line[len(b"CONFIG_HZ="):])
        except (OSError, ValueError, EOFError):
            continue
    return None


def fitting_hz(reading: Reading) -> List[int]:
    """Every HZ under which ``reading`` is where jiffies would be."""
    jiffies, monotonic_ns = reading
    modulus = 1 << JIFFIES_BITS
    fits = []
    for hz in HZ_CHOICES:
        expected = (hz * (monotonic_ns - 300 * 1_000_000_000)) // 1_000_000_000
        off = (jiffies - expected) % modulus
        if min(off, modulus - off) <= _SLACK_S * hz:
            fits.append(hz)
    return fits


def hz_from_jiffies(reading: Reading) -> Optional[int]:
    """The one HZ that fits ``reading``, or None when more than one does (in
    the minutes around 300 s after boot, close rates such as 250 and 256 do)."""
    fits = fitting_hz(reading)
    return fits[0] if len(fits) == 1 else None


def kernel_hz(read_jiffies: Callable[[], Reading]) -> Tuple[Optional[int], str]:
    """HZ and where it came from; ``read_jiffies`` is asked only without a configuration."""
    hz = configured_hz()
    if hz is not None:
        return hz, "kernel config"
    hz = hz_from_jiffies(read_jiffies())
    return hz, "jiffies counter" if hz is not None else "unknown"
