"""The filter options without a kernel: their values checked (one line, exit
2), and what user space keeps of synthetic lines; what the kernel is told
(the flow filter's and the drop policy's bytes, as the programs read them)."""

import os

import click
import pytest

from xctl_probe.commands.filter_options import filters_from, reason_codes
from xctl_probe.kernel.binding import ffi, lib
from xctl_probe.kernel.drop_policy import LOSS, NOT_ASKED, NOT_LOSS_AFTER_FIN
from xctl_probe.kernel.flow_filter import FlowFilter, flow_filter
from xctl_probe.meaning import drop_classes, filters
from xctl_probe.meaning.event import TransportDrop

from lab.cli import EXIT_USAGE, assert_one_line_error, run_probe


def line(**fields) -> TransportDrop:
    base = dict(ts=1, event_type="transport.drop", entity_id="network-a-b-1-2", value="0",
                family="ipv4", saddr="10.0.0.1", daddr="10.0.0.2", sport=1, dport=2, segs=1,
                err=0, netns=4026531840)
    return TransportDrop(**{**base, **fields})


LINES = [
    line(pid=10, comm="trainer", job_id="981", cgroup_id=7, kind="rto"),
    line(pid=10, comm="trainer", job_id="981", cgroup_id=7, kind="drop",
         reason="NETFILTER_DROP", reason_code=5),
    line(pid=11, comm="loader", job_id="982", cgroup_id=8, kind="fast"),
    line(pid=12, comm="trainer", cgroup_id=9, kind="tlp"),
    line(kind="drop", reason="NO_SOCKET", reason_code=3),
    line(pid=13, comm="x", job_id="981", cgroup_id=7),  # a close line: no kind
]


def kept(**options):
    keep = filters_from(**options).keep()
    assert keep is not None
    return keep(list(LINES))


def test_no_filter_costs_nothing():
    assert filters.Filters().keep() is None
    # The kernel's filters leave user space nothing to do either.
    assert filters_from(port=[80], family=["ipv6"], netns=["4026531840"]).keep() is None


def test_each_user_space_filter_keeps_exactly_the_matching_lines():
    assert kept(pid=[10]) == LINES[:2]
    assert kept(pid=[10, 12]) == LINES[:2] + [LINES[3]]
    assert kept(comm=["trainer"]) == [LINES[0], LINES[1], LINES[3]]
    assert kept(job=["981"]) == [LINES[0], LINES[1], LINES[5]]
    assert kept(cgroup=["8", "9"]) == [LINES[2], LINES[3]]
    assert kept(kind=["rto", "fast"]) == [LINES[0], LINES[2]]
    assert kept(kind=["drop"]) == [LINES[1], LINES[4]]
    # --reason keeps drop lines only; which reasons is the kernel's to apply.
    assert kept(reason=["netfilter_drop"]) == [LINES[1], LINES[4]]


def test_options_are_anded_and_their_values_ored():
    assert kept(comm=["trainer"], kind=["rto", "tlp"]) == [LINES[0], LINES[3]]
    assert kept(pid=[10, 11], job=["982"]) == [LINES[2]]
    assert kept(pid=[10], kind=["fast"]) == []


def test_drops_are_traced_only_where_a_drop_line_can_pass():
    assert filters_from().drops
    assert filters_from(kind=["drop", "rto"]).drops
    assert not filters_from(kind=["rto", "synack"]).drops
    assert filters_from(reason=["NETFILTER_DROP"]).drops


def test_values_become_ids():
    got = filters_from(reason=["skb_drop_reason_netfilter_drop", "No_Socket"],
                       netns=["/proc/self/ns/net", "4026531999"], cgroup=["/proc", "12"],
                       family=["ipv4"], port=[80, 80, 443])
    assert got.reasons == {"NETFILTER_DROP", "NO_SOCKET"}
    assert got.netns == {os.stat("/proc/self/ns/net").st_ino, 4026531999}
    assert got.cgroups == {os.stat("/proc").st_ino, 12}
    assert got.ports == {80, 443} and got.families == {"ipv4"}


@pytest.mark.parametrize("args, needle", [
    (["--pid", "0"], "--pid"),
    (["--pid", "abc"], "--pid"),
    (["--port", "65536"], "--port"),
    (["--port", "0"], "--port"),
    ([arg for port in range(1, 10) for arg in ("--port", str(port))], "at most 8"),
    ([arg for ns in range(1, 10) for arg in ("--netns", str(ns))], "at most 8"),
    (["--comm", "a-name-of-16-byte"], "--comm"),
    (["--comm", ""], "--comm"),
    (["--job", ""], "--job"),
    (["--cgroup", "/no/such/cgroup"], "--cgroup"),
    (["--netns", "no-such-namespace"], "--netns"),
    (["--netns", "0"], "--netns"),
    (["--family", "ipx"], "--family"),
    (["--kind", "slow"], "--kind"),
    (["--reason", "no such"], "--reason"),
    (["--reason", "NETFILTER_DROP", "--kind", "rto"], "--reason"),
    (["--reason", "NETFILTER_DROP", "--no-drops"], "--no-drops"),
    (["--kind", "drop", "--no-drops"], "--no-drops"),
])
def test_a_bad_value_is_one_line_and_exit_2(args, needle):
    assert_one_line_error(run_probe(*args), EXIT_USAGE, needle)


class Reasons:
    def __init__(self, named):
        self._named = named

    def items(self):
        return iter(self._named.items())

    def code(self, name):
        return next((code for code, known in self._named.items() if known == name), None)


KERNEL = Reasons({2: "NOT_SPECIFIED", 5: "NETFILTER_DROP", 7: "QUEUE_PURGE", 9: "CONSUMED",
                  11: "BRAND_NEW_REASON"})


def test_reasons_become_this_kernels_numbers_or_one_line_why_not():
    assert reason_codes(filters_from(reason=["NETFILTER_DROP", "brand_new_reason"]), KERNEL,
                        False) == {5, 11}
    with pytest.raises(click.UsageError, match="no such drop reason.*check --reasons"):
        reason_codes(filters_from(reason=["TCP_ZEROWINDOW"]), KERNEL, False)
    with pytest.raises(click.UsageError, match="no loss.*--drops all"):
        reason_codes(filters_from(reason=["QUEUE_PURGE"]), KERNEL, False)
    assert reason_codes(filters_from(reason=["QUEUE_PURGE"]), KERNEL, True) == {7}
    with pytest.raises(click.UsageError, match="never reported"):
        reason_codes(filters_from(reason=["CONSUMED"]), KERNEL, True)


def test_the_drop_policy_refuses_every_reason_not_asked_for():
    packed = drop_classes.policy(KERNEL, asked={2, 5}).packed()
    policy = ffi.cast("struct xp_drop_policy *", ffi.from_buffer(packed))
    assert (policy.classes[2], policy.classes[5]) == (NOT_LOSS_AFTER_FIN, LOSS)
    assert [code for code in range(len(policy.classes))
            if policy.classes[code] != NOT_ASKED] == [2, 5]
    assert policy.beyond == NOT_ASKED
    # Without --reason a reason past the table stays a loss.
    unasked = drop_classes.policy(KERNEL).packed()
    assert ffi.cast("struct xp_drop_policy *", ffi.from_buffer(unasked)).beyond == LOSS


def test_the_flow_filter_as_the_kernel_reads_it():
    assert filters.MAX_PORTS == lib.XP_FILTER_PORTS
    assert filters.MAX_NETNS == lib.XP_FILTER_NETNS
    assert flow_filter(frozenset(), frozenset(), frozenset()) is None
    packed = FlowFilter(frozenset({443, 80}), frozenset({4026531840}),
                        frozenset({"ipv6"})).packed()
    assert len(packed) == ffi.sizeof("struct xp_filter")
    flow = ffi.cast("struct xp_filter *", ffi.from_buffer(packed))
    assert (flow.nports, list(flow.ports)[:2], flow.nnetns, flow.netns[0]) == (
        2, [80, 443], 1, 4026531840)
    assert flow.families == lib.XP_FILTER_IPV6 and flow.drops_only == 0
    # Drops alone asked for: the socket programs reserve no record.
    assert filters.Filters(reasons=frozenset({"NETFILTER_DROP"})).drops_only
    assert filters.Filters(kinds=frozenset({"drop"})).drops_only
    assert not filters.Filters(kinds=frozenset({"drop", "rto"})).drops_only
    alone = flow_filter(frozenset(), frozenset(), frozenset(), drops_only=True).packed()
    assert ffi.cast("struct xp_filter *", ffi.from_buffer(alone)).drops_only == 1
    both = FlowFilter(families=frozenset({"ipv4", "ipv6"})).packed()
    assert ffi.cast("struct xp_filter *", ffi.from_buffer(both)).families == (
        lib.XP_FILTER_IPV4 | lib.XP_FILTER_IPV6)

