"""Every failure is one line on stderr, a documented exit code, nothing on
stdout and never a traceback. Each case is caused for real, not mocked."""

import subprocess
import sys
from pathlib import Path

import pytest

from lab.cli import EXIT_BAD_INSTALL, EXIT_USAGE, assert_one_line_error, run_probe
from lab.probe import PROBE, probe_env


def test_unknown_flag():
    assert_one_line_error(run_probe("--bogus"), EXIT_USAGE, "--bogus", "--help")


@pytest.mark.parametrize("value", ["abc", "0", "-1", "1e9", "nan"])
def test_bad_window(value):
    assert_one_line_error(run_probe("--window", value), EXIT_USAGE, "--window")


@pytest.mark.parametrize("value", ["0", "0.05", "3601", "nan", "inf", "-1", "soon"])
def test_bad_interval(value):
    assert_one_line_error(run_probe("--interval", value), EXIT_USAGE, "--interval")


@pytest.mark.parametrize("value", ["9977", "localhost:9977", "::1:9977", "[127.0.0.1]:9977",
                                   "127.0.0.1:0", "127.0.0.1:65536", "127.0.0.1:", "[]:9977",
                                   "127.0.0.1:http"])
def test_bad_metrics_address(value):
    assert_one_line_error(run_probe("--metrics", value), EXIT_USAGE, "--metrics")


def test_missing_option_value():
    assert_one_line_error(run_probe("--window"), EXIT_USAGE, "--window")


def test_unexpected_argument():
    assert_one_line_error(run_probe("extra"), EXIT_USAGE, "extra")


def test_drops_takes_loss_or_all_and_not_with_no_drops():
    assert_one_line_error(run_probe("--drops", "some"), EXIT_USAGE, "--drops")
    assert_one_line_error(run_probe("--no-drops", "--drops", "all"), EXIT_USAGE, "--no-drops",
                          "--drops")


def test_help_documents_exit_codes_and_xctl():
    result = run_probe("--help")
    assert result.returncode == 0
    text = result.stdout.decode()
    assert "--window" in text and "ark run --probe" in text
    for code in range(1, 8):
        assert f"{code} " in text


def test_version():
    result = run_probe("--version")
    assert result.returncode == 0
    assert result.stdout.decode().startswith("xctl-probe-ebpf ")


def test_broken_install_is_one_line(tmp_path):
    """The script run by a python3 that cannot import the package, with no
    interpreter to hand over to, says so in one line."""
    script = tmp_path / "xctl-probe-ebpf"
    script.write_bytes(b"#!" + str(tmp_path / "no-python").encode() + b"\n"
                       + Path(PROBE).read_bytes().split(b"\n", 1)[1])
    result = subprocess.run([sys.executable, "-S", "-I", str(script)], capture_output=True,
                            env=probe_env(), timeout=30)
    assert result.returncode == EXIT_BAD_INSTALL, result.stderr
    assert result.stdout == b""
    assert result.stderr.count(b"\n") == 1 and b"Traceback" not in result.stderr


def test_top_wants_a_terminal_and_format_table_or_json():
    assert_one_line_error(run_probe("top"), EXIT_USAGE, "top", "terminal")
    assert_one_line_error(run_probe("top", "--sort", "pid"), EXIT_USAGE, "--sort")
    assert_one_line_error(run_probe("top", "--span", "0"), EXIT_USAGE, "--span")
    assert_one_line_error(run_probe("--format", "xml"), EXIT_USAGE, "--format")
