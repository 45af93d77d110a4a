// SPDX-License-Identifier: (BSD-2-Clause OR GPL-2.0)
/*
 * TCP retransmissions, as they happen, into one ring buffer of struct
 * xp_record (record.h), and the TCP packets the kernel drops (drops.bpf.h).
 * User space turns each record into one xctl event.
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
#include "ring.bpf.h"
#include "filter.bpf.h"
#include "holders.bpf.h"
#include "sock_state.bpf.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

/*
 * The layout the object was built with, in its BTF, where
 * tests/unit/test_layout.py and bpftool read it: the argument of a global
 * function that no program calls, so libbpf never loads it. Every function
 * the programs do call is inlined: Linux 5.10 (Debian's 5.10.223) panics
 * when a read through a kernel pointer faults (a closed socket's NULL
 * sk_socket) in a program that has subprograms, searching an exception table
 * the JIT left empty.
 */
__u64 xp_record_layout(const struct xp_record *r)
{
	return r->ts_ns;
}

static __always_inline void fill_flow(struct xp_record *r, const struct sock_common *skc)
{
	r->ts_ns = bpf_ktime_get_ns();
	r->tgid = bpf_get_current_pid_tgid() >> 32;
	r->family = skc->skc_family;
	r->state = skc->skc_state;
	r->sport = skc->skc_num;
	r->dport = bpf_ntohs(skc->skc_dport);
	r->netns = skc->skc_net.net->ns.inum;

	/* Ring buffer memory is not zeroed: every byte is written. */
	r->reason = 0;
	r->ifindex = 0;
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

/*
 * The inode of the socket's file; 0 once close() took the file (sock_orphan)
 * and before accept() gave one. A read through either NULL would fault, and a
 * fault costs the kernel a search of its exception tables (tens of
 * microseconds under emulation, where tcp_destroy_sock meets a closed socket
 * every time).
 */
static __always_inline __u64 sock_ino(const struct sock *sk)
{
	const struct socket *sock = sk->sk_socket;
	const struct file *file;

	if (!sock)
		return 0;
	file = sock->file;
	return file ? file->f_inode->i_ino : 0;
}

/* What a socket record says about the socket itself, beyond its flow. */
static __always_inline void fill_sock(struct xp_record *r, const struct sock *sk,
				      const struct tcp_sock *tp)
{
	const struct inet_connection_sock *icsk = (const void *)tp;

	r->ino = sock_ino(sk);
	r->cgroup_id = sock_cgroup_id(sk);
	r->retrans = tp->total_retrans;
	r->sent = tp->segs_out;
	r->srtt_us = tp->srtt_us >> 3;
	r->ca_state = BPF_CORE_READ_BITFIELD(icsk, icsk_ca_state);
	r->pending = icsk->icsk_pending;
	r->flags = retransmit_tp_has_err() ? XP_F_ERR_LAYOUT : 0;
	if (tp->undo_marker)
		r->flags |= XP_F_UNDO_MARKER;
	r->rto = icsk->icsk_rto;
	r->backoff = icsk->icsk_backoff;
	/* tcp_jiffies32 is the low half of jiffies, as rcv_tstamp is. */
	r->ack_age = (__u32)bpf_jiffies64() - tp->rcv_tstamp;
}

/* The owner the socket's state remembers, or none. */
static __always_inline void fill_owner(struct xp_record *r, const struct xp_sock_state *st)
{
	if (st) {
		r->owner_tgid = st->owner_tgid;
		__builtin_memcpy(r->owner_comm, st->owner_comm, sizeof(r->owner_comm));
	} else {
		r->owner_tgid = 0;
		__builtin_memset(r->owner_comm, 0, sizeof(r->owner_comm));
	}
}

/*
 * tcp_rtx_synack() raises a socket's total_retrans for a SYN-ACK only when
 * the socket is a passive Fast Open child (tcp_passive_fastopen()): one
 * accepted on its SYN's data, still in SYN_RECV, whose handshake the request
 * socket in fastopen_rsk is finishing.
 */
static __always_inline int is_fastopen_child(const struct sock *sk, const struct tcp_sock *tp)
{
	return sk->__sk_common.skc_state == TCP_SYN_RECV && tp->fastopen_rsk;
}

/*
 * The socket's history for a record about to be submitted: the counter at its
 * previous record or at its birth; none if the probe saw neither.
 */
static __always_inline struct xp_sock_state *with_history(struct xp_record *r, struct sock *sk,
							  const struct tcp_sock *tp)
{
	struct xp_sock_state *st = sock_state_get(sk);

	r->prev_retrans = 0;
	if (!st)
		return sock_state_make(sk);
	if (st->flags & XP_S_NO_BASE)
		return st;
	if (!(st->flags & XP_S_BASE_AT_ESTABLISHED) || is_fastopen_child(sk, tp)) {
		r->prev_retrans = st->reported;
		r->flags |= XP_F_HISTORY;
	}
	return st;
}

/* Once the record is in the ring: a record lost in a full ring moves nothing,
 * and the socket's next record carries its segments. */
static __always_inline void reported(struct xp_sock_state *st, __u32 retrans)
{
	if (st) {
		st->reported = retrans;
		st->flags = XP_S_RECORDED;
	}
}

static __always_inline int on_retransmit(struct sock *sk, const struct sk_buff *skb, int err)
{
	const struct tcp_skb_cb *cb = (const void *)&skb->cb;
	const struct tcp_sock *tp = bpf_skc_to_tcp_sock(sk);
	struct xp_sock_state *st;
	struct xp_record *r;
	__u32 retrans;

	if (!tp || !sock_wanted(&sk->__sk_common))
		return 0;
	r = reserve_record();
	if (!r)
		return 0;
	fill_flow(r, &sk->__sk_common);
	fill_sock(r, sk, tp);
	r->skb_segs = cb->tcp_gso_segs;
	r->tcp_flags = BPF_CORE_READ_BITFIELD(cb, tcp_flags);
	r->err = err;
	r->source = XP_SRC_RETRANSMIT;
	st = with_history(r, sk, tp);
	r->cookie = sock_id(sk, st);
	fill_owner(r, st);
	retrans = r->retrans;
	submit_record(r);
	reported(st, retrans);
	return 0;
}

SEC("tp_btf/tcp_retransmit_skb")
int BPF_PROG(xp_tcp_retransmit_skb, struct sock *sk, const struct sk_buff *skb)
{
	if (retransmit_tp_has_err())
		return on_retransmit(sk, skb, (int)ctx[2]);
	return on_retransmit(sk, skb, 0);
}

/*
 * A SYN-ACK retransmission. Usually sk is the listener and the handshake is a
 * request socket, which has no tcp_sock counters: its own num_retrans (not
 * yet raised for this one when the tracepoint fires) gives what the flow
 * sent and retransmitted, one segment each time. A Fast Open child counts
 * it in its own counter, and its record is the child's.
 */
SEC("tp_btf/tcp_retransmit_synack")
int BPF_PROG(xp_tcp_retransmit_synack, struct sock *sk, const struct request_sock *req)
{
	const struct tcp_sock *tp = bpf_skc_to_tcp_sock(sk);
	struct xp_sock_state *st = 0;
	struct xp_record *r;
	__u32 before, retrans;

	if (!tp || !sock_wanted(&req->__req_common))
		return 0;
	r = reserve_record();
	if (!r)
		return 0;
	fill_flow(r, &req->__req_common);
	r->skb_segs = 1;
	r->tcp_flags = TCPHDR_SYN | TCPHDR_ACK;
	r->err = 0;
	r->source = XP_SRC_SYNACK;
	if (is_fastopen_child(sk, tp)) {
		fill_sock(r, sk, tp);
		st = with_history(r, sk, tp);
		r->cookie = sock_id(sk, st);
		fill_owner(r, st);
	} else {
		before = req->num_retrans;
		/* The listener's inode and cgroup: its process owns the handshake. */
		r->ino = sock_ino(sk);
		r->cgroup_id = sock_cgroup_id(sk);
		r->retrans = before + 1;
		r->prev_retrans = 0;
		r->sent = before + 2;
		r->srtt_us = 0;
		r->ca_state = 0;
		r->pending = 0;
		r->flags = retransmit_tp_has_err() ? XP_F_ERR_LAYOUT : 0;
		r->rto = 0;
		r->backoff = 0;
		r->ack_age = 0;
		r->cookie = request_id(req, r);
		fill_owner(r, 0);
	}
	retrans = r->retrans;
	submit_record(r);
	reported(st, retrans);
	return 0;
}

/*
 * The task on the CPU, if it is a process: connect() and close() run in the
 * caller's context. A kernel thread (a delayed fput, a kernel socket) owns
 * nothing for the user.
 */
static __always_inline void remember_owner(struct xp_sock_state *st)
{
	struct task_struct *task = (void *)bpf_get_current_task();

	if (BPF_CORE_READ(task, flags) & PF_KTHREAD)
		return;
	st->owner_tgid = bpf_get_current_pid_tgid() >> 32;
	bpf_get_current_comm(st->owner_comm, sizeof(st->owner_comm));
}

/*
 * The owner close() revealed, for a socket whose records went without one:
 * a socket a server accepted is first seen in its owner's context at close()
 * (no tracepoint runs in accept()'s context on Linux 6.1 to 6.18, and the
 * probe uses no kprobe or fentry), and user space, reading the ring later,
 * may find its file gone by then. The record accounts for no segment (both
 * readings of its counter are the same) and gives no line: user space names
 * the socket's earlier records with it (xctl_probe/output/lines.py).
 */
static __always_inline void report_owner(struct sock *sk, const struct tcp_sock *tp,
					 const struct xp_sock_state *st)
{
	struct xp_record *r;

	if (!sock_wanted(&sk->__sk_common))
		return;
	r = reserve_record();
	if (!r)
		return;
	fill_flow(r, &sk->__sk_common);
	fill_sock(r, sk, tp);
	r->skb_segs = 0;
	r->tcp_flags = 0;
	r->err = 0;
	r->source = XP_SRC_OWNER;
	r->prev_retrans = r->retrans;
	r->flags |= XP_F_HISTORY;
	r->cookie = sock_id(sk, st);
	fill_owner(r, st);
	submit_record(r);
}

/*
 * A socket born while the probe runs has no retransmissions the probe has
 * not seen: its baseline is its counter at birth, so even a first
 * retransmission whose BPF run the kernel skipped is counted by the next
 * record. Sockets older than the probe have no baseline; their first record
 * counts its own segments.
 *
 * Its owner is remembered at connect() (SYN_SENT) and at close() or
 * shutdown() (ESTABLISHED to FIN_WAIT1, CLOSE_WAIT to LAST_ACK; only
 * tcp_close_state() makes those, in the caller's context): once close() has
 * taken the file away, nothing else in the kernel says whose socket it was,
 * and a close is when the last data and the FIN are still in flight. A
 * socket that gave records without an owner (one a server accepted) has it
 * reported then.
 */
SEC("tp_btf/inet_sock_set_state")
int BPF_PROG(xp_inet_sock_set_state, struct sock *sk, int oldstate, int newstate)
{
	const struct tcp_sock *tp;
	struct xp_sock_state *st;
	__u32 named;

	if (sk->sk_protocol != IPPROTO_TCP)
		return 0;
	tp = bpf_skc_to_tcp_sock(sk);
	if (!tp)
		return 0;
	if (newstate == TCP_SYN_SENT || (newstate == TCP_SYN_RECV && oldstate == TCP_LISTEN)) {
		st = newstate == TCP_SYN_SENT ? sock_state_make(sk) : sock_state_new(sk);
		if (!st)
			return 0;
		/* connect() again after a failed attempt: tcp_disconnect() has
		 * zeroed the counter, and the socket starts over. */
		st->reported = tp->total_retrans;
		st->flags = newstate == TCP_SYN_RECV ? XP_S_BASE_AT_ESTABLISHED : 0;
		if (newstate == TCP_SYN_SENT)
			remember_owner(st);
	} else if (newstate == TCP_FIN_WAIT1 || newstate == TCP_LAST_ACK) {
		st = sock_state_get(sk);
		if (!st) {
			st = sock_state_make(sk);
			if (!st)
				return 0;
			st->flags = XP_S_NO_BASE;
		}
		named = st->owner_tgid;
		remember_owner(st);
		if (!named && st->owner_tgid && st->flags & XP_S_RECORDED)
			report_owner(sk, tp, st);
	} else if (newstate == TCP_ESTABLISHED && oldstate == TCP_SYN_RECV) {
		st = sock_state_get(sk);
		if (st && st->flags == XP_S_BASE_AT_ESTABLISHED) {
			st->reported = tp->total_retrans;
			st->flags = 0;
		}
	}
	return 0;
}

/*
 * The last word on a socket: whatever its counter rose by since its last
 * record (a retransmission whose BPF run was skipped, or whose record found
 * the ring full), and for a socket that gave records, the signal for user
 * space to forget the flow.
 */
static __always_inline void report_close(struct sock *sk)
{
	const struct tcp_sock *tp = bpf_skc_to_tcp_sock(sk);
	struct xp_sock_state *st = sock_state_get(sk);
	struct xp_record *r;

	if (!tp || !st || st->flags & (XP_S_BASE_AT_ESTABLISHED | XP_S_NO_BASE))
		return;
	if (!(st->flags & XP_S_RECORDED) && tp->total_retrans == st->reported)
		return;
	if (!sock_wanted(&sk->__sk_common))
		return;
	r = reserve_record();
	if (!r)
		return;
	fill_flow(r, &sk->__sk_common);
	fill_sock(r, sk, tp);
	r->skb_segs = 0;
	r->tcp_flags = 0;
	r->err = 0;
	r->source = XP_SRC_CLOSE;
	r->prev_retrans = st->reported;
	r->flags |= XP_F_HISTORY;
	r->cookie = sock_id(sk, st);
	fill_owner(r, st);
	submit_record(r);
}

SEC("tp_btf/tcp_destroy_sock")
int BPF_PROG(xp_tcp_destroy_sock, struct sock *sk)
{
	report_close(sk);
	sock_state_forget(sk);
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

/*
 * Run by the loader through BPF_PROG_TEST_RUN where the kernel's
 * configuration is not on the node: the low 31 bits of jiffies (a test run's
 * result is read as an int), which user space sets against the monotonic
 * clock to find HZ (xctl_probe/kernel/ticks.py).
 */
SEC("socket")
int xp_report_jiffies(struct __sk_buff *skb)
{
	return bpf_jiffies64() & 0x7fffffff;
}

/* The drop program comes last, so the hooks keep their order (check, describe). */
#include "drops.bpf.h"
