"""The lab the tests, the report scripts and the benches share.

- netns: a network namespace of a test's own, built on the package's storm lab
  (xctl_probe.lab), with nftables loss and the kernel's counters;
- probe: the installed probe, started as xctl starts it; cli: its command
  line run as a person would, and the shape of a failure;
- programs: its BPF programs as the kernel lists them, and a running probe's
  maps; two_probes: the probe as xctl runs it beside one with --drops all;
- kernel_trace: the kernel's own trace events, filtered to a test's flows;
- skipped_runs: the probe with one program more, whose runs the kernel
  skips on demand (skipped_runs.bpf.c), and the kernel's count of them;
- accounting: lines held against the kernel's counters; scenarios: whole
  runs (a loss storm, a pair of processes) as typed results;
- xctl_contract: xctl's own acceptance rules for a line; records: synthetic
  records packed in the one layout, for tests without a kernel; btf: BPF type
  information; waits: how long a wait may take (longer in a guest);
- traffic.py, short_flows.py: traffic run inside a namespace.
"""
