"""xctl-probe-ebpf: every TCP retransmission on the node, as xctl JSONL events.

The path of an event, one module each: loader (BPF object into the kernel) →
ringbuf (raw records out) → decoder (records into Structs) → flows (each
flow's rate) → event (xctl's contract) → writer (JSONL on stdout), tied
together by stream and driven by cli.
"""

__version__ = "0.1.0"
