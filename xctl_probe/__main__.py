"""``python3 -m xctl_probe``: the same command line as xctl-probe-ebpf."""

import sys

from .commands.cli import main

sys.exit(main())
