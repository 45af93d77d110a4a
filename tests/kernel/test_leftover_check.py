"""The check every test uses for programs left behind: it waits out the
kernel's grace period, and still fails, naming the holder, on a program that
really stays."""

import subprocess
import sys

import pytest

from lab.marks import requires_root
from lab.programs import wait_programs_gone

pytestmark = requires_root

HOLD = """
import time
from xctl_probe.kernel.loader import LoadedProbe
with LoadedProbe():
    print("loaded", flush=True)
    time.sleep(120)
"""


def test_a_program_that_stays_fails_the_check_and_names_its_holder():
    # Run from / so that the installed package is imported, not the source tree.
    holder = subprocess.Popen([sys.executable, "-c", HOLD], stdout=subprocess.PIPE, text=True,
                              cwd="/")
    try:
        assert holder.stdout.readline() == "loaded\n"
        with pytest.raises(AssertionError) as failure:
            wait_programs_gone(timeout=2)
        message = str(failure.value)
        assert "xp_tcp_retransmit_skb" in message
        assert f"held by {holder.pid} (" in message or f", {holder.pid} (" in message
    finally:
        holder.kill()
        holder.wait()
    # Once its holder is gone, the same check passes (after the grace period).
    wait_programs_gone()
