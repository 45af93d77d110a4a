// SPDX-License-Identifier: (BSD-2-Clause OR GPL-2.0)
/*
 * TCP retransmissions, as they happen, into one ring buffer of struct
 * xp_record (record.h). User space turns each record into one xctl event.
 *
 * Attached through tp_btf: it needs neither tracefs nor kprobes, and the
 * tracepoint arguments arrive as typed kernel pointers.
 */
#include "kernel.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_endian.h>
#include "core_fixes.bpf.h"
#include "record.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

/* User space may resize it before load (a power of two of pages). */
struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 1 << 20);
} records SEC(".maps");

/*
 * The sockets that have given a record: each gets a close record, which
 * carries whatever a skipped BPF run missed (user space counts segments as
 * the rise of the socket's counter). Entries go with their sockets
 * (tcp_destroy_sock); LRU keeps the map bounded if a socket ever escapes that.
 */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 16384);
	__type(key, __u64);
	__type(value, __u8);
} retrans_seen SEC(".maps");

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
 * Not inlined on purpose: as a function of its own it puts struct xp_record
 * into the object's BTF, where tests/test_layout.py and bpftool read the
 * layout the object was built with.
 */
static __noinline void fill_flow(struct xp_record *r, const struct sock_common *skc)
{
	r->ts_ns = bpf_ktime_get_ns();
	r->tgid = bpf_get_current_pid_tgid() >> 32;
	r->family = BPF_CORE_READ(skc, skc_family);
	r->state = BPF_CORE_READ(skc, skc_state);
	r->sport = BPF_CORE_READ(skc, skc_num);
	r->dport = bpf_ntohs(BPF_CORE_READ(skc, skc_dport));
	r->netns = BPF_CORE_READ(skc, skc_net.net, ns.inum);

	/* Ring buffer memory is not zeroed: every byte is written. */
	__builtin_memset(r->saddr, 0, sizeof(r->saddr));
	__builtin_memset(r->daddr, 0, sizeof(r->daddr));
	if (r->family == AF_INET6 && sock_has_ipv6()) {
		BPF_CORE_READ_INTO(&r->saddr, skc, skc_v6_rcv_saddr);
		BPF_CORE_READ_INTO(&r->daddr, skc, skc_v6_daddr);
	} else {
		BPF_CORE_READ_INTO((__be32 *)r->saddr, skc, skc_rcv_saddr);
		BPF_CORE_READ_INTO((__be32 *)r->daddr, skc, skc_daddr);
	}
}

static __always_inline __u64 sock_ino(const struct sock *sk)
{
	return BPF_CORE_READ(sk, sk_socket, file, f_inode, i_ino);
}

/* What a socket record says about the socket itself, beyond its flow. */
static __always_inline void fill_sock(struct xp_record *r, const struct sock *sk)
{
	const struct inet_connection_sock *icsk = (const void *)sk;
	const struct tcp_sock *tp = (const void *)sk;

	r->sock = (__u64)sk;
	r->ino = sock_ino(sk);
	r->cgroup_id = sock_cgroup_id(sk);
	r->sent = BPF_CORE_READ(tp, segs_out);
	r->srtt_us = BPF_CORE_READ(tp, srtt_us) >> 3;
	r->ca_state = BPF_CORE_READ_BITFIELD_PROBED(icsk, icsk_ca_state);
	r->pending = BPF_CORE_READ(icsk, icsk_pending);
}

static __always_inline __u32 skb_pcount(const struct sk_buff *skb)
{
	const struct tcp_skb_cb *cb = (const void *)&skb->cb;

	return BPF_CORE_READ(cb, tcp_gso_segs);
}

static __always_inline int on_retransmit(const struct sock *sk, const struct sk_buff *skb,
					 int err, __u32 flags)
{
	const struct tcp_sock *tp = (const void *)sk;
	__u64 key = (__u64)sk;
	__u8 seen = 1;
	struct xp_record *r;

	if (!bpf_map_lookup_elem(&retrans_seen, &key))
		bpf_map_update_elem(&retrans_seen, &key, &seen, BPF_ANY);
	r = reserve_record();
	if (!r)
		return 0;
	fill_flow(r, &sk->__sk_common);
	fill_sock(r, sk);
	r->skb_segs = skb_pcount(skb);
	r->retrans = BPF_CORE_READ(tp, total_retrans);
	r->err = err;
	r->flags = flags;
	r->source = XP_SRC_RETRANSMIT;
	bpf_ringbuf_submit(r, 0);
	return 0;
}

SEC("tp_btf/tcp_retransmit_skb")
int BPF_PROG(xp_tcp_retransmit_skb, const struct sock *sk, const struct sk_buff *skb)
{
	if (retransmit_tp_has_err())
		return on_retransmit(sk, skb, (int)ctx[2], XP_F_ERR_LAYOUT);
	return on_retransmit(sk, skb, 0, 0);
}

/*
 * A SYN-ACK retransmission comes from a request socket, which has no
 * tcp_sock counters: its own num_retrans (not yet raised for this one when
 * the tracepoint fires) gives what the flow sent and retransmitted.
 */
SEC("tp_btf/tcp_retransmit_synack")
int BPF_PROG(xp_tcp_retransmit_synack, const struct sock *sk, const struct request_sock *req)
{
	__u32 before = BPF_CORE_READ(req, num_retrans);
	struct xp_record *r = reserve_record();

	if (!r)
		return 0;
	fill_flow(r, &req->__req_common);
	r->sock = (__u64)req;
	/* The listener's inode and cgroup: its process owns the handshake. */
	r->ino = sock_ino(sk);
	r->cgroup_id = sock_cgroup_id(sk);
	r->srtt_us = 0;
	r->ca_state = 0;
	r->pending = 0;
	r->skb_segs = 1;
	r->retrans = before + 1;
	r->sent = before + 2;
	r->err = 0;
	r->flags = retransmit_tp_has_err() ? XP_F_ERR_LAYOUT : 0;
	r->source = XP_SRC_SYNACK;
	bpf_ringbuf_submit(r, 0);
	return 0;
}

/*
 * The last word on a socket that retransmitted: whatever its counter rose by
 * since its last record (a retransmission whose BPF run was skipped), and the
 * signal for user space to forget the flow.
 */
SEC("tp_btf/tcp_destroy_sock")
int BPF_PROG(xp_tcp_destroy_sock, const struct sock *sk)
{
	const struct tcp_sock *tp = (const void *)sk;
	__u64 key = (__u64)sk;
	struct xp_record *r;

	if (!bpf_map_lookup_elem(&retrans_seen, &key))
		return 0;
	r = reserve_record();
	if (r) {
		fill_flow(r, &sk->__sk_common);
		fill_sock(r, sk);
		r->skb_segs = 0;
		r->retrans = BPF_CORE_READ(tp, total_retrans);
		r->err = 0;
		r->flags = retransmit_tp_has_err() ? XP_F_ERR_LAYOUT : 0;
		r->source = XP_SRC_CLOSE;
		bpf_ringbuf_submit(r, 0);
	}
	bpf_map_delete_elem(&retrans_seen, &key);
	return 0;
}

/*
 * Run once by the loader through BPF_PROG_TEST_RUN: returns which tracepoint
 * layout CO-RE chose on this kernel, the same constant the programs above
 * branch on, so the loader can report the path it took.
 */
SEC("socket")
int xp_report_layout(struct __sk_buff *skb)
{
	return retransmit_tp_has_err() ? XP_F_ERR_LAYOUT : 0;
}
