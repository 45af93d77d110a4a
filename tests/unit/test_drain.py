"""The thread that drains the ring cannot reach /proc, by construction: the
code it runs (output/drain.py, output/handover.py) imports, at the top and
nowhere else, nothing of the probe's but the ring reader. And the hand-over
between it and the line thread: bounded, in order, and honest about what
it drops at a stop.

That the drain keeps going while /proc blocks, on the real kernel:
tests/kernel/test_blocked_proc_read.py.
"""

import ast
import subprocess
import sys
import threading
from pathlib import Path

import xctl_probe.output.drain as drain_module
import xctl_probe.output.handover as handover_module
from xctl_probe.kernel.ringbuf import RECORD_SIZE
from xctl_probe.output.handover import Batches

DRAIN_MODULES = (drain_module, handover_module)
# All that importing the drain's modules may load of the package.
REACHABLE = {
    "xctl_probe", "xctl_probe._libbpf", "xctl_probe._libbpf.lib", "xctl_probe.errors",
    "xctl_probe.kernel", "xctl_probe.kernel.binding", "xctl_probe.kernel.ringbuf",
    "xctl_probe.output", "xctl_probe.output.drain", "xctl_probe.output.handover",
}


def test_the_drain_imports_only_at_the_top_of_its_modules():
    for module in DRAIN_MODULES:
        tree = ast.parse(Path(module.__file__).read_text())
        top = {id(node) for node in tree.body}
        nested = [node.lineno for node in ast.walk(tree)
                  if isinstance(node, (ast.Import, ast.ImportFrom)) and id(node) not in top]
        assert not nested, f"{module.__name__} imports at lines {nested}"


def test_the_drain_reaches_nothing_of_the_probe_but_the_ring():
    loaded = subprocess.run(
        [sys.executable, "-I", "-c", "import sys, xctl_probe.output.drain\n"
         "print(*sorted(m for m in sys.modules if m.startswith('xctl_probe')))"],
        capture_output=True, text=True, check=True).stdout.split()
    assert "xctl_probe.kernel.ringbuf" in loaded
    assert set(loaded) <= REACHABLE, set(loaded) - REACHABLE


def test_batches_come_out_in_order_and_the_bound_stops_the_copying():
    batches = Batches(bound_records=3)
    record = b"r" * RECORD_SIZE
    batches.put(record * 2)
    assert batches.room()
    batches.put(record * 2)
    assert not batches.room() and not batches.wait_room(0.01)
    assert batches.peek() == record * 2
    assert batches.take() == record * 2
    assert batches.room()
    assert not batches.wait_idle(0.01)  # one taken, not done with
    assert batches.take() == record * 2
    batches.close()
    assert batches.take() is None
    assert batches.wait_idle(0)


def test_a_take_waits_for_a_batch_and_ends_at_close():
    batches = Batches()
    taken = []
    taker = threading.Thread(target=lambda: taken.extend(iter(batches.take, None)))
    taker.start()
    batches.put(b"a" * RECORD_SIZE)
    batches.put(b"b" * RECORD_SIZE)
    batches.close()
    taker.join(5)
    assert taken == [b"a" * RECORD_SIZE, b"b" * RECORD_SIZE]


def test_abandon_counts_the_records_waiting_and_in_making():
    batches = Batches()
    batches.put(b"a" * RECORD_SIZE * 3)
    batches.put(b"b" * RECORD_SIZE * 2)
    batches.take()
    assert batches.abandon() == 5
    assert batches.peek() is None and batches.room()
