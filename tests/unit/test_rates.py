"""``value``, the flow's retransmission rate over the window, without a
kernel: records through the probe's own path, against the rate as the README
defines it, and the bounds on the flows kept."""

import random
from fractions import Fraction
from operator import attrgetter

import pytest

from xctl_probe.kernel.decoder import FLAG_HISTORY, SOURCE_CLOSE
from xctl_probe.meaning.flows import Flow, rate_value
from xctl_probe.meaning.table import FlowTable

from lab.records import OFFSET_NS, SECOND, maker, record


def expected_rate(d_retrans: int, d_sent: int) -> str:
    """The README's ``value``: 100 * Δretransmitted / Δsent, rounded half up
    to two decimals, without trailing zeros; 100 when nothing but
    retransmissions went out, 0 when nothing did."""
    if d_sent <= d_retrans:
        return "100" if d_retrans else "0"
    hundredths = int(Fraction(10000 * d_retrans, d_sent) + Fraction(1, 2))
    return f"{hundredths // 100}.{hundredths % 100:02d}".rstrip("0").rstrip(".")


def values(lines_maker, *records):
    """The value of each record's line, each record a batch of its own."""
    return [line.value for fields in records
            for line in lines_maker.lines(record(**fields), OFFSET_NS)]


@pytest.mark.parametrize("d_retrans,d_sent,text", [
    (1, 8, "12.5"), (1, 1, "100"), (0, 0, "0"), (0, 5, "0"), (1, 25000, "0"),
    (1, 3, "33.33"), (1, 20000, "0.01"), (2, 3, "66.67"), (101, 1000, "10.1"),
    (99999, 100000, "100"), (5, 0, "100")])
def test_the_rate_text(d_retrans, d_sent, text):
    assert expected_rate(d_retrans, d_sent) == rate_value(d_retrans, d_sent) == text


def test_the_rate_is_the_percent_rounded_half_up():
    rng = random.Random(7)
    for _ in range(20000):
        d_sent = rng.randrange(1, 1 << 32)
        d_retrans = rng.randrange(0, d_sent + 1)
        assert rate_value(d_retrans, d_sent) == expected_rate(d_retrans, d_sent)


def test_first_window_is_the_connection_lifetime(tmp_path):
    # One retransmission among 5,000 segments sent: a fraction of a percent.
    assert values(maker(tmp_path), dict(retrans=1, sent=5000)) == ["0.02"]


def test_rate_over_the_window_once_the_flow_has_history(tmp_path):
    assert values(maker(tmp_path),
                  dict(ts_ns=0, retrans=10, sent=100_000),
                  # 10 s later: 200 of the 1,000 segments sent since were retransmissions.
                  dict(ts_ns=10 * SECOND, retrans=210, sent=101_000),
                  # Only what happened within the last 10 s counts.
                  dict(ts_ns=20 * SECOND, retrans=211, sent=111_000)) == ["0.01", "20", "0.01"]


def test_a_window_with_nothing_sent_and_counters_that_wrap(tmp_path):
    lines_maker = maker(tmp_path, window_s=1)
    assert values(lines_maker, dict(cookie=1, ts_ns=0, retrans=1, sent=0),
                  dict(cookie=1, ts_ns=2 * SECOND, retrans=1, sent=0)) == ["100", "0"]
    # u32 counters wrap: the deltas still come out right.
    assert values(lines_maker, dict(cookie=2, ts_ns=0, retrans=0xFFFFFFFF, sent=0xFFFFFFF0),
                  dict(cookie=2, ts_ns=2 * SECOND, retrans=9, sent=0x54)) == ["100", "10"]


def test_a_flow_silent_longer_than_the_idle_bound_starts_over(tmp_path):
    lines_maker = maker(tmp_path, window_s=1)  # forgotten after two minutes
    assert values(lines_maker, dict(cookie=1, ts_ns=0, retrans=1, sent=2),
                  dict(cookie=2, ts_ns=100 * SECOND, retrans=1, sent=2),
                  dict(cookie=3, ts_ns=121 * SECOND, retrans=1, sent=2),
                  # Measured from the start of the connection (2 of 10), not
                  # from its sample of 121 s ago (1 of 8).
                  dict(cookie=1, ts_ns=122 * SECOND, retrans=2, sent=10),
                  # Still known: from its sample of 100 s ago (1 of 4).
                  dict(cookie=2, ts_ns=122 * SECOND, retrans=2, sent=6)) == [
        "50", "50", "50", "20", "25"]


def test_a_close_record_forgets_the_flow(tmp_path):
    assert values(maker(tmp_path, window_s=1), dict(ts_ns=0, retrans=1, sent=4),
                  dict(ts_ns=SECOND, retrans=2, prev_retrans=1, sent=8, flags=FLAG_HISTORY,
                       source=SOURCE_CLOSE),
                  # Known still, it would be measured from its sample at 1 s (1 of 2).
                  dict(ts_ns=2 * SECOND, retrans=3, sent=10)) == ["25", "25", "30"]


class Active:
    def __init__(self, at):
        self.at = at


def test_past_the_bound_the_least_recently_active_quarter_goes():
    table = FlowTable(SECOND, attrgetter("at"), max_flows=8)
    for key in range(8):
        table.add(key, Active(at=100 - key))
    table.add(8, Active(at=200))
    assert [key for key in range(9) if table.get(key) is None] == [6, 7]


@pytest.mark.parametrize("window_s,idle_s", [(1, 120), (60, 600)])
def test_the_idle_bound_is_ten_windows_and_at_least_two_minutes(window_s, idle_s):
    table = FlowTable(window_s * SECOND, attrgetter("at"))
    table.add("old", Active(at=0))
    table.add("newer", Active(at=10 * SECOND))
    table.forget_idle(idle_s * SECOND - 1)
    assert table.get("old") is not None
    table.forget_idle(idle_s * SECOND + window_s * SECOND // 16)  # it looks once a slice
    assert (table.get("old"), table.get("newer") is not None) == (None, True)


def test_a_storming_flow_keeps_few_samples():
    flow = Flow()
    for i in range(1000):  # a sample a slice, for 60 windows
        flow.sample(i * SECOND // 16, i, i * 5, SECOND)
    assert len(flow.samples) <= 18
