"""The systemd unit that runs the probe as a service, with least privilege.

A dedicated user (systemd's DynamicUser: allocated when the service starts,
nothing to create on the node) with only the capabilities xctl_probe/kernel/capabilities.py names
(each proven needed by test), no way to gain more, a read-only system but
for a directory of its logs (a refused program's verifier log), and a
restart policy that retries what may pass (a crash, a kernel that refused a
load under memory pressure) but not what cannot (exit codes 2 to 6: a bad
option, no privilege, no BTF, a broken install, a kernel without the hooks).
Its stdout, the JSONL stream, goes to the journal:
``journalctl -u xctl-probe-ebpf -o cat``.
"""

from ..errors import (EXIT_BAD_INSTALL, EXIT_KERNEL_UNSUPPORTED, EXIT_NO_BTF, EXIT_NO_PRIVILEGE,
                      EXIT_USAGE)
from ..kernel import capabilities

PERMANENT_FAILURES = (EXIT_USAGE, EXIT_NO_PRIVILEGE, EXIT_NO_BTF, EXIT_BAD_INSTALL,
                      EXIT_KERNEL_UNSUPPORTED)


def unit_text(exec_path: str, user: str) -> str:
    caps = " ".join(capabilities.SERVICE)
    codes = " ".join(str(code) for code in PERMANENT_FAILURES)
    return f"""\
[Unit]
Description=xctl-probe-ebpf: every TCP retransmission on this node, as xctl JSONL events
Documentation=https://github.com/osen7/ark-infra
After=network.target

[Service]
Type=exec
ExecStart={exec_path}
DynamicUser=yes
User={user}
# Only what the probe needs: CAP_BPF and CAP_PERFMON to load and attach its
# programs, and to ask the kernel which processes hold a socket (the owners).
# To read jobs from other processes' environment (SLURM_JOB_ID) add
# CAP_SYS_PTRACE and CAP_DAC_READ_SEARCH to both lines. It never calls ptrace().
AmbientCapabilities={caps}
CapabilityBoundingSet={caps}
# Before Linux 5.11 BPF maps and programs count against the locked-memory
# limit, which only CAP_SYS_RESOURCE could raise from inside.
LimitMEMLOCK=infinity
NoNewPrivileges=yes
SystemCallFilter=~ptrace process_vm_readv process_vm_writev
ProtectSystem=strict
# Writable, and kept after it stops: the verifier's log of a program the
# kernel refused ($LOGS_DIRECTORY, /var/log/xctl-probe-ebpf).
LogsDirectory=xctl-probe-ebpf
ProtectHome=read-only
PrivateTmp=yes
PrivateDevices=yes
ProtectKernelTunables=yes
ProtectKernelModules=yes
ProtectKernelLogs=yes
ProtectControlGroups=yes
ProtectClock=yes
ProtectHostname=yes
RestrictAddressFamilies=AF_UNIX
RestrictNamespaces=yes
RestrictRealtime=yes
LockPersonality=yes
Restart=on-failure
RestartSec=5s
RestartPreventExitStatus={codes}

[Install]
WantedBy=multi-user.target
"""
