"""HZ, which turns the kernel's jiffies into milliseconds: from the kernel's
configuration, or from the jiffies counter itself where the node has none."""

import gzip

import pytest

from xctl_probe.kernel.ticks import HZ_CHOICES, JIFFIES_BITS, configured_hz, hz_from_jiffies

SECOND = 1_000_000_000


def jiffies_at(hz: int, uptime_s: float, late_s: float = 0.0) -> int:
    """jiffies as the kernel has them ``uptime_s`` into boot, its tick ``late_s`` behind."""
    return ((1 << 32) - 300 * hz + int(hz * (uptime_s - late_s))) % (1 << JIFFIES_BITS)


def test_the_configuration_says_it(tmp_path):
    plain, packed = tmp_path / "config-6.1.0", tmp_path / "config.gz"
    plain.write_bytes(b"# CONFIG_HZ_100 is not set\nCONFIG_HZ_250=y\nCONFIG_HZ=250\n")
    with gzip.open(packed, "wb") as f:
        f.write(b"CONFIG_HZ_1000=y\nCONFIG_HZ=1000\n")
    assert configured_hz([str(plain), str(packed)]) == 250
    assert configured_hz([str(tmp_path / "missing"), str(packed)]) == 1000
    assert configured_hz([str(tmp_path / "missing")]) is None


@pytest.mark.parametrize("hz", HZ_CHOICES)
@pytest.mark.parametrize("uptime_s", [1800, 86400 * 3, 86400 * 400])
def test_one_reading_of_jiffies_tells_hz(hz, uptime_s):
    assert hz_from_jiffies((jiffies_at(hz, uptime_s, late_s=0.3), uptime_s * SECOND)) == hz


def test_near_the_wrap_jiffies_cannot_tell():
    """300 s after boot every HZ puts jiffies at the wrap: no answer, not a wrong one."""
    assert hz_from_jiffies((jiffies_at(250, 301), 301 * SECOND)) is None


