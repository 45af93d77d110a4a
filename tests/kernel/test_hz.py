"""HZ as the running kernel's own jiffies give it, against its configuration."""


import pytest

from xctl_probe.kernel.ticks import configured_hz, fitting_hz, hz_from_jiffies

from lab.marks import requires_root


@requires_root
def test_the_running_kernels_jiffies_give_its_configured_hz():
    from xctl_probe.kernel.loader import LoadedProbe

    configured = configured_hz()
    if configured is None:
        pytest.skip("this kernel's configuration is not on the node")
    with LoadedProbe(attach=False) as probe:
        reading = probe.read_jiffies()
        assert (probe.hz, probe.hz_source) == (configured, "kernel config")
    fits = fitting_hz(reading)
    print(f"jiffies {reading[0]} at {reading[1] / 1e9:.1f} s: HZ {hz_from_jiffies(reading)} "
          f"(fitting {fits}), configured {configured}")
    # The kernel's jiffies are where its HZ puts them; the answer is that HZ,
    # or none while another fits too (a guest freshly booted), never another.
    assert configured in fits
    assert hz_from_jiffies(reading) == (configured if len(fits) == 1 else None)
