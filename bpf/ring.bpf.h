/* SPDX-License-Identifier: (BSD-2-Clause OR GPL-2.0) */
/*
 * The ring buffer of struct xp_record (record.h) that user space reads: the
 * probe writes real records into it, the bench's program synthetic ones
 * (user space hands it the probe's map). User space may resize it before
 * load (a power of two of pages). The probe's programs reserve and submit
 * their records here.
 */
#pragma once

#include <bpf/bpf_helpers.h>

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 1 << 20);
} records SEC(".maps");

/* Records that found the ring buffer full; user space reports them in-band. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} lost_records SEC(".maps");

/* A full ring buffer loses the record: count it, so the loss is reported, not hidden. */
static __always_inline struct xp_record *reserve_record(void)
{
	struct xp_record *r = bpf_ringbuf_reserve(&records, sizeof(*r), 0);
	__u32 zero = 0;
	__u64 *lost;

	if (!r) {
		lost = bpf_map_lookup_elem(&lost_records, &zero);
		if (lost)
			__sync_fetch_and_add(lost, 1);
	}
	return r;
}

/*
 * Waking the reader costs more than everything else a record does (about
 * four fifths of the program's time in a storm, measured with bpf_stats), so
 * a record wakes it only once an eighth of the ring is waiting; the reader
 * also polls on a short timeout (xctl_probe/output/stream.py), which bounds how long
 * a lone record waits on a quiet node.
 */
static __always_inline void submit_record(struct xp_record *r)
{
	__u64 waiting = bpf_ringbuf_query(&records, BPF_RB_AVAIL_DATA);
	__u64 size = bpf_ringbuf_query(&records, BPF_RB_RING_SIZE);

	bpf_ringbuf_submit(r, waiting >= size / 8 ? BPF_RB_FORCE_WAKEUP : BPF_RB_NO_WAKEUP);
}
