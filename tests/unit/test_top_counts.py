"""top's counts and its screen, without a kernel: synthetic lines added as the
line thread adds them, viewed as the screen views them once a second."""

import io

import pytest
from rich.console import Console

from xctl_probe.meaning.event import TransportDrop
from xctl_probe.terminal import top_counts
from xctl_probe.terminal.top_counts import OTHER_FLOWS, TopCounts
from xctl_probe.terminal.top_screen import screen

NOW = 1_700_000_100_000  # epoch ms, 0 ms into its second


def line(ts, sport=40000, segs=1, value="1", kind="fast", pid=4242, comm="trainer",
         job="j1", netns=1, reason=None):
    return TransportDrop(ts=ts, event_type="transport.drop", value=value,
                         entity_id=f"network-10.0.0.1-10.0.0.2-{sport}-9000", family="ipv4",
                         saddr="10.0.0.1", daddr="10.0.0.2", sport=sport, dport=9000,
                         segs=segs, err=0, netns=netns, pid=pid, comm=comm, job_id=job,
                         kind=kind, reason=reason, state="ESTABLISHED")


def drop(ts, sport=40000, segs=1, **fields):
    return line(ts, sport, segs, value="3", kind="drop", reason="NETFILTER_DROP", **fields)


def flows(view):
    return [(key[1].rsplit("-", 2)[1], flow.segs, flow.drops) for key, flow in view.flows]


def test_segments_and_drops_over_the_last_span_seconds_per_flow():
    counts = TopCounts(span_s=10)
    counts.add([line(NOW - 10_001, segs=100),  # the second before the span's first
                line(NOW - 9_000, segs=3),  # the span's first second
                line(NOW + 999, segs=2),  # now's second
                drop(NOW - 5_000, segs=5)])
    counts.add([line(NOW - 1, sport=40001, segs=4)])
    view = counts.view(NOW, "segs")
    assert flows(view) == [("40000", 5, 5), ("40001", 4, 0)]
    assert (view.segs, view.drops) == (9, 5)
    # A second later the first second has left the span, and is forgotten.
    assert flows(counts.view(NOW + 1000, "segs")) == [("40001", 4, 0), ("40000", 2, 5)]


def test_a_flow_is_its_entity_in_its_namespace():
    counts = TopCounts(span_s=10)
    counts.add([line(NOW, netns=1), line(NOW, netns=2, segs=2)])
    assert [(key[0], flow.segs) for key, flow in counts.view(NOW, "segs").flows] == [(2, 2),
                                                                                  (1, 1)]


@pytest.mark.parametrize("sort, order", [("segs", ["1", "3", "2"]), ("drops", ["2", "1", "3"]),
                                         ("rate", ["3", "1", "2"])])
def test_sorted_most_first_by_segs_drops_or_rate(sort, order):
    counts = TopCounts(span_s=10)
    counts.add([line(NOW, sport=1, segs=10, value="5"), drop(NOW, sport=1, segs=1),
                line(NOW, sport=2, segs=2, value="1"), drop(NOW, sport=2, segs=7),
                line(NOW, sport=3, segs=4, value="40")])
    view = counts.view(NOW, sort)
    assert [key[1].rsplit("-", 2)[1] for key, _ in view.flows] == order


def test_a_flows_owner_job_and_rate_are_the_newest_it_named():
    counts = TopCounts(span_s=10)
    counts.add([line(NOW - 3000, value="50", pid=1, comm="old", job="j-old"),
                line(NOW - 2000, value="20", pid=2, comm="new", job="j-new")])
    # Newer, yet naming nobody: a drop before its socket was known; its value is no rate.
    counts.add([drop(NOW - 1000, pid=None, comm=None, job=None)])
    ((_, flow),) = counts.view(NOW, "segs").flows
    assert (flow.pid, flow.comm, flow.job, flow.rate) == (2, "new", "j-new", 20.0)
    assert flow.line.kind == "drop"


def test_processes_and_jobs_sum_their_flows_with_their_highest_rate():
    counts = TopCounts(span_s=10)
    counts.add([line(NOW, sport=1, segs=3, value="5", pid=1, comm="a"),
                line(NOW, sport=2, segs=4, value="30", pid=1, comm="a"),
                line(NOW, sport=3, segs=1, value="2", pid=2, comm="b"),
                drop(NOW, sport=4, segs=9, pid=None, comm=None, job=None)])
    view = counts.view(NOW, "segs")
    assert [(g.key, g.flows, g.segs, g.drops, g.rate) for g in view.processes] == [
        ((1, "a"), 2, 7, 0, 30.0), ((2, "b"), 1, 1, 0, 2.0), ((None, None), 1, 0, 9, None)]
    assert [(g.key, sorted(g.processes), g.flows, g.segs, g.drops) for g in view.jobs] == [
        (("j1",), [1, 2], 3, 8, 0), ((None,), [], 1, 0, 9)]


def test_past_max_flows_a_second_the_rest_count_as_one(monkeypatch):
    monkeypatch.setattr(top_counts, "MAX_FLOWS", 3)
    counts = TopCounts(span_s=10)
    counts.add([line(NOW, sport=port, segs=port) for port in range(1, 7)])
    view = counts.view(NOW, "segs")
    assert [(key, flow.segs) for key, flow in view.flows if key == OTHER_FLOWS] == [
        (OTHER_FLOWS, 4 + 5 + 6)]
    assert len(view.flows) == 4 and view.segs == 21


def test_seconds_ahead_of_now_are_forgotten_as_the_clock_steps_back():
    counts = TopCounts(span_s=10)
    counts.add([line(NOW + 3_600_000, segs=50), line(NOW, segs=1)])
    assert counts.view(NOW, "segs").segs == 1
    assert counts.view(NOW + 3_600_000, "segs").segs == 0


def render(view, width=120, height=30, **options):
    console = Console(file=io.StringIO(), width=width, height=height, record=True,
                      color_system=None)
    console.print(screen(view, (width, height), options.get("sort", "segs"), 10,
                         options.get("lost", 0), options.get("keys", True)))
    return [row.rstrip() for row in console.export_text().splitlines()]


def test_the_screen_shows_the_flows_processes_and_jobs_most_first():
    counts = TopCounts(span_s=10)
    counts.add([line(NOW, sport=1, segs=5, value="12.5"), line(NOW, sport=2, segs=50, pid=7,
                                                                comm="[bold]x", value="3"),
                drop(NOW, sport=3, segs=2, pid=None, comm=None, job=None)])
    text = render(counts.view(NOW, "segs"), lost=4)
    assert len(text) <= 30 and all(len(row) <= 120 for row in text)
    assert text[0].startswith("xctl-probe-ebpf top  last 10 s: 55 segments retransmitted")
    assert "2 packets dropped; 4 records lost; sorted by segs" in text[0]
    at = text.index("Flows")
    assert text[at + 1].split() == ["LOCAL", "→", "REMOTE", "PID/COMM", "JOB", "SEGS▼", "DROPS",
                                    "RATE", "LAST"]
    # Text from other processes is text: rich markup in a comm is shown as it is.
    assert text[at + 2].split() == ["10.0.0.1:2", "→", "10.0.0.2:9000", "7/[bold]x", "j1", "50",
                                    "0", "3.0%", "fast"]
    assert text[at + 4].split() == ["10.0.0.1:3", "→", "10.0.0.2:9000", "(no", "owner", "named)",
                                    "(no", "job)", "0", "2", "-", "NETFILTER_DROP"]
    processes = text[text.index("Processes") + 2].split()
    assert processes == ["7/[bold]x", "1", "50", "0", "3.0%"]
    jobs = text[text.index("Jobs") + 1:text.index("Jobs") + 4]
    assert jobs[1].split() == ["j1", "2", "2", "55", "0", "12.5%"]
    assert jobs[2].split() == ["(no", "job)", "0", "1", "0", "2", "-"]
    assert text[-1].split() == ["q", "quit", "s", "sort", "by", "drops", "Ctrl-C", "quit"]


def test_the_screen_fits_small_terminals_and_names_the_sort():
    counts = TopCounts(span_s=10)
    counts.add([line(NOW, sport=port, segs=port) for port in range(1, 60)])
    text = render(counts.view(NOW, "drops"), width=60, height=15, keys=False, sort="drops")
    assert len(text) == 15 and all(len(row) <= 60 for row in text)
    # The least important columns go; the flow shows whole.
    at = text.index("Flows")
    assert text[at + 1].split() == ["LOCAL", "→", "REMOTE", "SEGS", "DROPS▼", "RATE"]
    assert text[at + 2].split() == ["10.0.0.1:59", "→", "10.0.0.2:9000", "59", "0", "1.0%"]
    assert text[-1].split() == ["Ctrl-C", "quit"]
