"""One object, both layouts of tcp:tcp_retransmit_skb: the pre-6.17 path is
compiled in, and CO-RE picks a path at load time from the kernel's BTF."""

import subprocess

import pytest

from xctl_probe.kernel.decoder import FLAG_ERR_LAYOUT, SOURCE_RETRANSMIT
from xctl_probe.kernel.loader import RING_MAP, LoadedProbe
from xctl_probe.kernel.objects import PROBE_OBJECT
from xctl_probe.kernel.preconditions import KERNEL_BTF
from xctl_probe.kernel.ringbuf import RingReader

from lab.btf import has_struct
from lab.marks import requires_root
from lab.netns import Netns
from lab.records import decode

pytestmark = requires_root

NEW_LAYOUT_TYPE = b"trace_event_raw_tcp_retransmit_skb"


def test_loader_reports_the_layout_the_kernel_btf_has():
    kernel_has_err = has_struct(KERNEL_BTF, NEW_LAYOUT_TYPE.decode())
    with LoadedProbe() as probe:
        assert probe.err_layout is kernel_has_err
        assert ("6.17+" in probe.layout) is kernel_has_err
        assert len(probe.attached) == 5


@pytest.fixture
def pre_617_btf(tmp_path):
    """This kernel's BTF, cut to what the object relocates against, with the
    6.17 tracepoint type renamed away: what CO-RE sees on an older kernel."""
    path = tmp_path / "pre-6.17.btf"
    subprocess.run(["bpftool", "gen", "min_core_btf", str(KERNEL_BTF), str(path),
                    str(PROBE_OBJECT)], check=True)
    data = path.read_bytes()
    assert data.count(NEW_LAYOUT_TYPE + b"\0") == 1
    path.write_bytes(data.replace(NEW_LAYOUT_TYPE + b"\0", NEW_LAYOUT_TYPE[:-1] + b"X\0"))
    return path


def test_old_layout_path_is_chosen_by_core_and_runs(pre_617_btf):
    with LoadedProbe(btf_path=pre_617_btf) as probe:
        assert probe.err_layout is False
        assert "before Linux 6.17" in probe.layout
        assert len(probe.attached) == 5

        # The old path, attached to this kernel's tracepoint, still reports.
        ring = RingReader(probe.map_fd(RING_MAP))
        ns = Netns()
        try:
            ns.drop_one_in(4, 9200)
            ns.traffic(9200, 1.5)
        finally:
            ns.close()
        records = [r for r in decode(ring.read()) if r.netns == ns.inode]
        ring.close()
    retransmits = [r for r in records if r.source == SOURCE_RETRANSMIT]
    assert retransmits
    assert all(not r.flags & FLAG_ERR_LAYOUT and r.err == 0 for r in retransmits)
