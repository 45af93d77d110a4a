"""Which drops are a loss, without a kernel: the table, the policy it makes
at a kernel's numbers (as the drop program reads it), and the lines of drops
that are no loss (--drops all): marked, valued 0, counted for nothing, never
merged with losses."""

from collections import Counter

import msgspec

from xctl_probe.kernel.binding import ffi
from xctl_probe.kernel.decoder import FLAG_NOT_LOSS, SOURCE_DROP
from xctl_probe.kernel.drop_policy import LOSS, NOT_LOSS, NOT_LOSS_AFTER_FIN, DropPolicy
from xctl_probe.meaning import drop_classes
from xctl_probe.output.pending import PendingLines

from lab.records import CLOSE_WAIT, OFFSET_NS, SECOND, maker, record


class Reasons:
    """A kernel's drop reasons as DropReasons gives them: (number, name)."""

    def __init__(self, named):
        self._named = named

    def items(self):
        return iter(self._named.items())


# Numbers of a kernel of the test's own: kernels renumber, names stay.
KERNEL = Reasons({2: "NOT_SPECIFIED", 5: "NETFILTER_DROP", 7: "QUEUE_PURGE", 9: "TCP_OLD_DATA",
                  11: "BRAND_NEW_REASON", 300: "TCP_CLOSE"})


def test_the_table_names_each_reason_once_with_a_class_and_why():
    names = Counter(name for group in drop_classes.GROUPS for name in group.names)
    assert [name for name, seen in names.items() if seen > 1] == []
    for group in drop_classes.GROUPS:
        assert group.why and group.names and group.drop_class in (LOSS, NOT_LOSS,
                                                                  NOT_LOSS_AFTER_FIN)
    after_fin = [name for name, group in drop_classes.BY_NAME.items()
                 if group.drop_class == NOT_LOSS_AFTER_FIN]
    assert after_fin == ["NOT_SPECIFIED"]


def unpacked(policy: DropPolicy):
    packed = policy.packed()
    assert len(packed) == ffi.sizeof("struct xp_drop_policy")
    return ffi.cast("struct xp_drop_policy *", ffi.from_buffer(packed))


def test_the_policy_holds_each_class_at_this_kernels_number():
    policy = unpacked(drop_classes.policy(KERNEL))
    assert policy.report_all == 0
    assert (policy.classes[2], policy.classes[5], policy.classes[7], policy.classes[9]) == (
        NOT_LOSS_AFTER_FIN, LOSS, NOT_LOSS, NOT_LOSS)
    # A name the table lacks is a loss, and said so.
    assert policy.classes[11] == LOSS
    assert drop_classes.unknown(KERNEL) == ["BRAND_NEW_REASON"]
    assert drop_classes.summary(KERNEL) == (
        "4 are no loss, skipped in the kernel unless --drops all; 1 this probe does not know, "
        "reported as loss: BRAND_NEW_REASON")
    # Every number the policy does not name is a loss: a number past the table too.
    named = {2, 5, 7, 9}
    assert all(policy.classes[code] == LOSS for code in range(len(policy.classes))
               if code not in named)
    assert unpacked(drop_classes.policy(KERNEL, report_all=True)).report_all == 1


def drop(ts_s, flags=0, reason=5):
    return record(ts_ns=ts_s * SECOND, source=SOURCE_DROP, state=CLOSE_WAIT, reason=reason,
                  flags=flags)


def test_a_drop_that_is_no_loss_is_marked_valued_0_and_counted_for_nothing(tmp_path):
    lines = maker(tmp_path).lines(drop(1) + drop(2, FLAG_NOT_LOSS) + drop(3, FLAG_NOT_LOSS)
                                  + drop(4), OFFSET_NS)
    assert [(line.value, line.loss) for line in lines] == [
        ("1", None), ("0", False), ("0", False), ("2", None)]
    assert b'"loss"' not in msgspec.json.encode(lines[0])
    assert b'"loss":false' in msgspec.json.encode(lines[1])


def test_waiting_lines_of_losses_and_of_no_losses_stay_apart(tmp_path):
    pending = PendingLines()
    for line in maker(tmp_path).lines(drop(1) + drop(2, FLAG_NOT_LOSS) + drop(3), OFFSET_NS):
        pending.add(line)
    assert [(line.value, line.loss, line.segs, line.count) for line in pending.take()] == [
        ("2", None, 2, 2), ("0", False, 1, None)]
