// SPDX-License-Identifier: (BSD-2-Clause OR GPL-2.0)
/*
 * Synthetic records for `xctl-probe-ebpf bench`. Each run of xp_bench_record
 * (through BPF_PROG_TEST_RUN, repeated in the kernel) writes one struct
 * xp_record into the probe's own ring buffer: user space hands this object
 * the probe's ring map before load. So the bench drives the real ring and the
 * real user-space path, with records of the real layout, and needs no
 * network: a storm of any size, on demand.
 *
 * The test-run packet carries the bench's choices (struct xp_bench_config).
 */
#include <linux/types.h>
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include "record.h"
#include "ring.bpf.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

struct xp_bench_config {
	__u64 ino;	/* a socket of the bench's own: the flows have an owner to find */
	__u32 flows;	/* records go round-robin over this many flows */
	__u32 netns;
	__u32 drops;	/* 1: dropped packets of those flows instead of retransmissions */
	__u32 reason;	/* the drops' enum skb_drop_reason */
	/* The bench's own process, as the one on the CPU: 6.1's and 5.10's
	 * socket filter programs may not ask for it (bpf_get_current_pid_tgid
	 * is unknown to them). */
	__u32 tgid;
	__u32 unused;
};

__u64 produced;

SEC("socket")
int xp_bench_record(struct __sk_buff *skb)
{
	struct xp_bench_config cfg;
	struct xp_record r = {};
	/* One test run at a time, on one CPU: no atomic needed (an atomic
	 * fetch-and-add, BPF_FETCH, needs Linux 5.12). */
	__u64 n = produced++;
	__u32 flow, round;

	if (bpf_skb_load_bytes(skb, 0, &cfg, sizeof(cfg)) || !cfg.flows)
		return 0;
	flow = n % cfg.flows;
	round = n / cfg.flows;

	r.ts_ns = bpf_ktime_get_ns();
	r.cookie = 1 + flow;
	r.ino = cfg.ino;
	r.netns = cfg.netns;
	r.skb_segs = 1;
	r.tgid = cfg.tgid;
	r.family = 2;		/* AF_INET */
	r.sport = 32768 + (flow & 0x7fff);
	r.dport = 9000;
	r.saddr[0] = 10;
	r.saddr[3] = 1;
	r.daddr[0] = 10;
	r.daddr[1] = 1;
	r.daddr[2] = flow >> 8;
	r.daddr[3] = flow;
	if (cfg.drops) {
		/* As the kernel drops segments for a receiver out of
		 * buffer: the socket named, no counters. */
		r.state = 1;	/* ESTABLISHED */
		r.source = XP_SRC_DROP;
		r.reason = cfg.reason;
	} else {
		/* One retransmission more per round, among ten segments sent: 10%. */
		r.prev_retrans = round;
		r.retrans = round + 1;
		r.sent = 10 * (round + 1);
		r.srtt_us = 400 + (n & 255);
		r.flags = XP_F_HISTORY | XP_F_UNDO_MARKER;
		r.tcp_flags = 0x10;	/* ACK */
		r.state = 1;		/* ESTABLISHED */
		r.source = XP_SRC_RETRANSMIT;
		r.ca_state = 4;		/* Loss, entered by the timer: rto */
		r.pending = 1;		/* the retransmission timer */
		r.rto = 50 << (round & 3);	/* 200 ms at HZ 250, backing off */
		r.backoff = round & 3;
		r.ack_age = n & 1023;
	}
	bpf_ringbuf_output(&records, &r, sizeof(r), BPF_RB_NO_WAKEUP);
	return 0;
}
