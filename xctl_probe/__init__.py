"""xctl-probe-ebpf: every TCP retransmission and drop on the node, as xctl JSONL events.

The path of an event, one sub-package a stage, read top to bottom:

- ``kernel``: the cffi binding to libbpf, the loader (the CO-RE object into
  the running kernel), the ring buffer, and the decoder of the one record
  layout (bpf/record.h); beside them what the kernel says of itself (HZ, the
  names of its drop reasons, the capabilities it asks for).
- ``meaning``: what a record means, from its fields alone: the segments it
  accounts for, its flow's rate, why it was retransmitted, which drops are a
  loss, and xctl's event.
- ``context``: what the record cannot carry, from /proc and cgroupfs: the
  socket's owner, its job, a dropped packet's socket.
- ``output``: records into lines (the per-record hot path), and the threads
  that run them: the main thread drains the ring (and reads no /proc), the
  line thread makes the lines, the writer thread writes them, merging
  behind a slow reader.
- ``terminal``: for a person at a terminal, the lines as a table's rows
  (the writer's form) or counted for ``top``'s full-screen view.
- ``commands``: the command line (``stream``, ``top``, ``check``,
  ``describe``, ``unit``, ``bench``).

Beside the path: ``bench``, the figures ``xctl-probe-ebpf bench`` measures,
and ``lab``, the loss storm in a network namespace of its own that the bench
makes and the tests' lab (tests/lab) is built on.
"""

__version__ = "0.1.0"
