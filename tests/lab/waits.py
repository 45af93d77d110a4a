"""How long the lab waits. A guest under emulation runs several times slower
than the host, by a factor the machine running it decides: the guests'
runner (tests/guests/runner.py) sets XPT_PATIENCE in the guest from how long
its first probe took to attach, and every wait reads it as it starts. Only
waits scale by it, never a figure a test asserts about the probe itself."""

import os


def patient(seconds: float) -> float:
    return seconds * float(os.environ.get("XPT_PATIENCE", "1"))
