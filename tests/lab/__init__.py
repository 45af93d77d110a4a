"""The lab the tests, the report scripts and the benches share: network
namespaces with nftables loss (netns), the probe as xctl runs it (probe), its
programs in the kernel (programs), the kernel's own trace (kernel_trace),
lines against counters (accounting), whole scenarios (scenarios), xctl's
contract (xctl_contract), BPF type information (btf), and the traffic
scripts run inside a namespace (traffic.py, short_flows.py)."""
