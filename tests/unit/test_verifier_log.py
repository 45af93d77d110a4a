"""Where a refused program's verifier log is kept, and what is said of it when
it cannot be: real files in a temp directory of the test's own. (That the
kernel's log reaches it is tests/kernel/test_cli_failures.py's.)"""

import os
import stat
import tempfile

import pytest

from xctl_probe.kernel.libbpf_log import LoadLog, unknown_helper
from xctl_probe.kernel.verifier_log import NOTHING, TAIL_LINES, keep

LOG = "".join(f"{n}: (b7) r{n % 10} = {n}\n" for n in range(20)) + (
    "R0 invalid mem access 'scalar'\n\n"
    "processed 3 insns (limit 1000000) max_states_per_insn 0 total_states 0\n")


@pytest.fixture
def temp_dir(tmp_path, monkeypatch):
    monkeypatch.delenv("LOGS_DIRECTORY", raising=False)
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    return tmp_path


def _said_path(said):
    prefix = "; the verifier's log: "
    assert said.startswith(prefix), said
    return said[len(prefix):]


def test_outside_the_unit_in_a_directory_of_this_users_own(temp_dir):
    kept = keep(LoadLog("xp_rejected", LOG))
    own = temp_dir / f"xctl-probe-ebpf-{os.geteuid()}"
    assert _said_path(kept.said) == str(own / "xp_rejected.verifier.log")
    assert (own / "xp_rejected.verifier.log").read_text() == LOG
    assert stat.S_IMODE(own.stat().st_mode) == 0o700
    assert kept.tail == tuple(line for line in LOG.splitlines() if line)[-TAIL_LINES:]
    assert "R0 invalid mem access 'scalar'" in kept.tail
    # The next failure replaces it, and leaves nothing else behind; the
    # kernel's log may lack its last newline.
    keep(LoadLog("xp_rejected", "again"))
    assert [p.name for p in own.iterdir()] == ["xp_rejected.verifier.log"]
    assert (own / "xp_rejected.verifier.log").read_text() == "again\n"


def test_under_the_unit_in_its_logs_directory(temp_dir, monkeypatch):
    logs = temp_dir / "var-log"
    logs.mkdir()
    monkeypatch.setenv("LOGS_DIRECTORY", str(logs))
    kept = keep(LoadLog("xp_rejected", LOG))
    assert _said_path(kept.said) == str(logs / "xp_rejected.verifier.log")
    assert (logs / "xp_rejected.verifier.log").read_text() == LOG


def test_a_symlink_planted_in_its_place_is_not_written_through(temp_dir):
    elsewhere = temp_dir / "elsewhere"
    elsewhere.mkdir()
    (temp_dir / f"xctl-probe-ebpf-{os.geteuid()}").symlink_to(elsewhere)
    kept = keep(LoadLog("xp_rejected", LOG))
    assert kept.said.startswith("; the verifier's log could not be kept (")
    assert "is not a directory of this user's own" in kept.said
    assert list(elsewhere.iterdir()) == []
    # check still shows its end.
    assert "R0 invalid mem access 'scalar'" in kept.tail


def test_a_program_name_cannot_lead_out_of_the_directory(temp_dir):
    kept = keep(LoadLog("../../xp_escape", LOG))
    own = temp_dir / f"xctl-probe-ebpf-{os.geteuid()}"
    assert os.path.dirname(_said_path(kept.said)) == str(own)
    assert [p.name for p in own.iterdir()] == [".._.._xp_escape.verifier.log"]


def test_no_log_nothing_said():
    assert keep(None) == NOTHING


def test_the_helper_a_kernel_does_not_offer_is_named():
    """What sends the loader to the older kernels' socket state
    (kernel/sock_helpers.py): the helper the verifier refused, from its
    last words, and nothing for any other refusal."""
    refused = ("0: R1=ctx(off=0,imm=0) R10=fp0\n0: (79) r6 = *(u64 *)(r1 +0)\n"
               "...\n41: (85) call bpf_get_socket_cookie#46\n"
               "unknown func bpf_get_socket_cookie#46\n"
               "processed 41 insns (limit 1000000) max_states_per_insn 0 total_states 3\n")
    assert unknown_helper(LoadLog("xp_tcp_retransmit_skb", refused)) == "bpf_get_socket_cookie"
    assert unknown_helper(LoadLog("xp_rejected", LOG)) is None
    assert unknown_helper(None) is None
    # The helper's name in a line of code the verifier printed is no refusal.
    assert unknown_helper(LoadLog("xp_x", "12: (85) call bpf_sk_storage_get#107\n" + LOG)) is None
