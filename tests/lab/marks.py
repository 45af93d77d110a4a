"""Marks the tests share."""

import os

import pytest

requires_root = pytest.mark.skipif(
    os.geteuid() != 0, reason="loads BPF programs and makes network namespaces: run as root"
)
