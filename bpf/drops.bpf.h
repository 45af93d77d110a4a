/* SPDX-License-Identifier: (BSD-2-Clause OR GPL-2.0) */
/*
 * The drop program: every TCP packet the kernel drops that is a loss (or,
 * when user space asks, every one), with the kernel's reason, into the
 * probe's ring (ring.bpf.h). A header of probe.bpf.c's, so that the one
 * object carries it; it needs nothing else of that file. Like ring.bpf.h,
 * it takes record.h from the file that includes it (cffi reads record.h as
 * it is, so it has no include guard).
 */
#pragma once

#include "kernel.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_endian.h>
#include "core_fixes.bpf.h"
#include "ring.bpf.h"
#include "filter.bpf.h"

/*
 * Set by user space before load from the running kernel's names
 * (xctl_probe/meaning/drop_classes.py), read-only once loaded: a section of
 * its own, so its size is the struct's and nothing else shares it.
 */
const volatile struct xp_drop_policy drop_policy SEC(".rodata.drops") = {};

/*
 * What the program put in the ring, by reason and state (struct
 * xp_drop_counts), for anyone to read with bpftool: a drop that is skipped,
 * or only counted in a tally, never shows here.
 */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, XP_DROP_REASONS + 1);
	__type(key, __u32);
	__type(value, struct xp_drop_counts);
} drop_records SEC(".maps");

/* Drops past their key's records, counted (record.h: a flood bounded).
 * Preallocated, as a map a tracing program writes to must be: Debian's 6.1
 * locked up both CPUs of a guest under the tests with BPF_F_NO_PREALLOC,
 * whose allocator (bpf_mem_alloc) is new in 6.1. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, XP_DROP_KEYS);
	__type(key, struct xp_drop_key);
	__type(value, struct xp_drop_tally);
} drop_tallies SEC(".maps");

/* The second of all keys' records together. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct xp_drop_window);
} drop_window SEC(".maps");

#ifndef barrier_var
#define barrier_var(var) asm volatile("" : "=r"(var) : "0"(var))
#endif

static __always_inline __u8 drop_class(__u32 reason)
{
	if (reason >= XP_DROP_REASONS)
		return drop_policy.beyond;
	/* Else clang may index the table before the check, which the verifier
	 * then sees unbounded. */
	barrier_var(reason);
	return drop_policy.classes[reason];
}

/*
 * Linux 6.3, "net: add SKB_CONSUMED drop reason": frees that are no drop pass
 * here too since. NOT_DROPPED_YET is no drop either, where it exists. Neither
 * is ever reported, whatever the policy.
 */
static __always_inline int no_drop(__u32 reason)
{
	if (bpf_core_enum_value_exists(enum skb_drop_reason, SKB_CONSUMED) &&
	    reason == bpf_core_enum_value(enum skb_drop_reason, SKB_CONSUMED))
		return 1;
	return bpf_core_enum_value_exists(enum skb_drop_reason, SKB_NOT_DROPPED_YET) &&
	       reason == bpf_core_enum_value(enum skb_drop_reason, SKB_NOT_DROPPED_YET);
}

/*
 * The TCP socket the kernel names for a dropped packet, of any kind (a
 * request or time-wait socket too), and its state; NULL and 0 if none: the
 * receiving socket (rx_sk, Linux 6.11+), else the one the skb is charged to.
 * Read with probe reads: skb->sk is an RCU pointer that helpers taking a
 * socket refuse (Linux 6.2+).
 */
static __always_inline const struct sock *named_sock(unsigned long long *ctx,
						     const struct sk_buff *skb, __u8 *state)
{
	const struct sock *sk = NULL;

	if (kfree_skb_has_rx_sk())
		sk = (const struct sock *)ctx[3];
	if (!sk)
		sk = BPF_CORE_READ(skb, sk);
	if (!sk)
		return NULL;
	*state = BPF_CORE_READ(sk, __sk_common.skc_state);
	/* Only TCP has these, and they are only a struct sock_common. */
	if (*state == TCP_NEW_SYN_RECV || *state == TCP_TIME_WAIT ||
	    BPF_CORE_READ(sk, sk_protocol) == IPPROTO_TCP)
		return sk;
	*state = 0;
	return NULL;
}

static __always_inline int full_sock(const struct sock *sk, __u8 state)
{
	return sk && state != TCP_NEW_SYN_RECV && state != TCP_TIME_WAIT;
}

/*
 * The peer's FIN comes after all its data, and the socket has taken it in
 * order (CLOSE_WAIT, CLOSING, LAST_ACK, TIME_WAIT), or the connection is over
 * (CLOSE): a segment it receives then holds nothing it still awaits. What
 * tcp_rcv_state_process() processes in those states without queueing (the
 * ACKs for its own data) it frees through kfree_skb without a reason.
 */
static __always_inline int peer_done(__u8 state)
{
	return state == TCP_CLOSE_WAIT || state == TCP_CLOSING || state == TCP_LAST_ACK ||
	       state == TCP_TIME_WAIT || state == TCP_CLOSE;
}

static __always_inline int not_loss(__u8 class, __u8 state, int inbound)
{
	return class == XP_DROP_NOT_LOSS ||
	       (class == XP_DROP_NOT_LOSS_AFTER_FIN && inbound && peer_done(state));
}

/* A dropped packet's TCP/IP facts, as on the wire. */
struct xp_packet {
	__u8 saddr[XP_ADDR_LEN];
	__u8 daddr[XP_ADDR_LEN];
	__be16 source;
	__be16 dest;
	__u16 family;
	__u8 flags;
};

/* 0 and the packet's facts if it is TCP over IPv4 or IPv6 (a first or only
 * fragment), else -1. */
static __always_inline int parse_packet(const struct sk_buff *skb, struct xp_packet *p)
{
	const unsigned char *head = skb->head;
	__u16 network = skb->network_header, transport;
	__be16 protocol = skb->protocol;
	struct xp_tcphdr tcp;

	if (network == (__u16)~0U)
		return -1;
	__builtin_memset(p, 0, sizeof(*p));
	if (protocol == bpf_htons(ETH_P_IP)) {
		struct xp_iphdr ip;

		if (bpf_probe_read_kernel(&ip, sizeof(ip), head + network) ||
		    ip.version_ihl >> 4 != 4 || ip.protocol != IPPROTO_TCP ||
		    ip.frag_off & bpf_htons(0x1fff))
			return -1;
		transport = network + (ip.version_ihl & 0xf) * 4;
		p->family = AF_INET;
		*(__be32 *)p->saddr = ip.saddr;
		*(__be32 *)p->daddr = ip.daddr;
	} else if (protocol == bpf_htons(ETH_P_IPV6)) {
		struct xp_ipv6hdr ip6;

		if (bpf_probe_read_kernel(&ip6, sizeof(ip6), head + network) ||
		    ip6.nexthdr != IPPROTO_TCP)
			return -1;
		transport = network + sizeof(ip6);
		p->family = AF_INET6;
		__builtin_memcpy(p->saddr, ip6.saddr, sizeof(p->saddr));
		__builtin_memcpy(p->daddr, ip6.daddr, sizeof(p->daddr));
	} else {
		return -1;
	}
	if (bpf_probe_read_kernel(&tcp, sizeof(tcp), head + transport))
		return -1;
	p->source = tcp.source;
	p->dest = tcp.dest;
	p->flags = tcp.flags;
	return 0;
}

/* Local side first: a packet the socket received ends at the socket's port,
 * one it sent starts from it. */
static __always_inline void fill_packet(struct xp_record *r, const struct xp_packet *p,
					int inbound)
{
	r->family = p->family;
	__builtin_memcpy(r->saddr, inbound ? p->daddr : p->saddr, sizeof(r->saddr));
	__builtin_memcpy(r->daddr, inbound ? p->saddr : p->daddr, sizeof(r->daddr));
	r->sport = bpf_ntohs(inbound ? p->dest : p->source);
	r->dport = bpf_ntohs(inbound ? p->source : p->dest);
	r->tcp_flags = p->flags;
}

/* The socket's network namespace, the device's without a full socket. */
static __always_inline __u32 drop_netns(const struct sk_buff *skb, const struct sock *sk,
					__u8 state)
{
	struct net_device *dev = skb->dev;

	if (full_sock(sk, state))
		return BPF_CORE_READ(sk, __sk_common.skc_net.net, ns.inum);
	return dev ? dev->nd_net.net->ns.inum : 0;
}

/* What a full socket tells of itself. */
static __always_inline void fill_drop_sock(struct xp_record *r, const struct sock *sk,
					   __u8 state)
{
	r->cookie = 0;
	r->ino = 0;
	r->cgroup_id = 0;
	if (!full_sock(sk, state))
		return;
	/* The cookie if the socket has one already (a retransmission gave it
	 * one): user space then keys the flow as it keys retransmissions. */
	r->cookie = BPF_CORE_READ(sk, __sk_common.skc_cookie.counter);
	r->ino = BPF_CORE_READ(sk, sk_socket, file, f_inode, i_ino);
	if (bpf_core_field_exists(struct sock_cgroup_data, cgroup))
		r->cgroup_id = BPF_CORE_READ(sk, sk_cgrp_data.cgroup, kn, id);
}

/*
 * One record of the second's budget, if any is left; the second restarts
 * once it is over. Without atomics: CPUs racing here may give a few records
 * more in a second than the budget, which bounds a flood just the same.
 */
static __always_inline int take_record(struct xp_drop_window *w, __u64 now, __u32 budget)
{
	if (now - w->start_ns >= 1000000000ULL) {
		w->start_ns = now;
		w->records = 0;
	}
	if (w->records >= budget)
		return 0;
	w->records++;
	return 1;
}

/* include/uapi/asm-generic/errno-base.h: the map has no room for a new key. */
#define XP_E2BIG 7

/* The key's tally, added if new; when the map is full, the tally of its
 * reason and state alone. NULL only if that one finds no room either. */
static __always_inline struct xp_drop_tally *tally_of(struct xp_drop_key *key)
{
	static const struct xp_drop_tally fresh = {};
	struct xp_drop_tally *tally = bpf_map_lookup_elem(&drop_tallies, key);

	if (tally)
		return tally;
	if (bpf_map_update_elem(&drop_tallies, key, &fresh, BPF_NOEXIST) == -XP_E2BIG) {
		__builtin_memset(key->laddr, 0, sizeof(key->laddr));
		key->lport = 0;
		tally = bpf_map_lookup_elem(&drop_tallies, key);
		if (tally)
			return tally;
		bpf_map_update_elem(&drop_tallies, key, &fresh, BPF_NOEXIST);
	}
	return bpf_map_lookup_elem(&drop_tallies, key);
}

/*
 * 1 if the drop is only to be counted, in its key's tally: its key or all
 * keys have had their records of the second. A drop without a tally gets a
 * record, as it would unbounded.
 */
static __always_inline int only_counted(const struct sk_buff *skb, const struct xp_packet *p,
					const struct sock *sk, __u8 state, int inbound,
					__u32 reason, int no_loss)
{
	struct xp_drop_key key = {};
	struct xp_drop_tally *tally;
	struct xp_drop_window *all;
	__u64 now = bpf_ktime_get_ns();
	__u32 zero = 0;

	__builtin_memcpy(key.laddr, inbound ? p->daddr : p->saddr, sizeof(key.laddr));
	key.netns = drop_netns(skb, sk, state);
	key.reason = reason;
	key.family = p->family;
	key.lport = bpf_ntohs(inbound ? p->dest : p->source);
	key.state = state;
	key.not_loss = no_loss;
	tally = tally_of(&key);
	if (!tally)
		return 0;
	all = bpf_map_lookup_elem(&drop_window, &zero);
	if (take_record(&tally->window, now, XP_DROP_KEY_RECORDS) &&
	    (!all || take_record(all, now, XP_DROP_ALL_RECORDS)))
		return 0;
	__sync_fetch_and_add(&tally->counted, 1);
	return 1;
}

static __always_inline void count_record(__u32 reason, __u8 state)
{
	__u32 slot = reason < XP_DROP_REASONS ? reason : XP_DROP_REASONS;
	struct xp_drop_counts *counts = bpf_map_lookup_elem(&drop_records, &slot);

	if (counts)
		__sync_fetch_and_add(&counts->by_state[state & (XP_DROP_STATES - 1)], 1);
}

static __always_inline void report_drop(const struct sk_buff *skb, const struct xp_packet *p,
					const struct sock *sk, __u8 state, int inbound,
					__u32 reason, int no_loss)
{
	struct net_device *dev = skb->dev;
	struct xp_record *r = reserve_record();

	if (!r)
		return;
	fill_packet(r, p, inbound);
	fill_drop_sock(r, sk, state);
	r->netns = drop_netns(skb, sk, state);
	r->ts_ns = bpf_ktime_get_ns();
	r->tgid = bpf_get_current_pid_tgid() >> 32;
	r->ifindex = dev ? dev->ifindex : skb->skb_iif;
	r->state = state;
	r->skb_segs = 1;
	r->retrans = 0;
	r->prev_retrans = 0;
	r->sent = 0;
	r->srtt_us = 0;
	r->err = 0;
	r->flags = no_loss ? XP_F_NOT_LOSS : 0;
	r->source = XP_SRC_DROP;
	r->ca_state = 0;
	r->pending = 0;
	r->reason = reason;
	r->rto = 0;
	r->backoff = 0;
	r->ack_age = 0;
	r->owner_tgid = 0;
	__builtin_memset(r->owner_comm, 0, sizeof(r->owner_comm));
	submit_record(r);
	count_record(reason, state);
}

/*
 * Every TCP packet the kernel drops, with or without a socket (a packet
 * netfilter drops on input meets none), with the kernel's reason. What is no
 * drop, and what is no loss unless user space asked for those too, returns
 * before a record is reserved: what is never a loss at once, a segment
 * received after the peer's FIN once the packet and socket are read. So does
 * a drop of a flow or reason filtered out (filter.bpf.h, the policy's
 * XP_DROP_NOT_ASKED), with no tally either, and a drop of a flood past its
 * key's records of the second: it is counted.
 */
SEC("tp_btf/kfree_skb")
int BPF_PROG(xp_kfree_skb, struct sk_buff *skb, void *location)
{
	struct xp_packet packet;
	const struct sock *sk;
	__u32 reason;
	__u8 class, state = 0;
	int inbound, no_loss;

	if (!kfree_skb_has_reason())
		return 0;
	reason = (__u32)ctx[2];
	if (no_drop(reason))
		return 0;
	class = drop_class(reason);
	if (class == XP_DROP_NOT_ASKED || (class == XP_DROP_NOT_LOSS && !drop_policy.report_all))
		return 0;
	if (parse_packet(skb, &packet) ||
	    !port_wanted(bpf_ntohs(packet.source), bpf_ntohs(packet.dest)) ||
	    !family_wanted(packet.family, packet.saddr, packet.daddr))
		return 0;
	sk = named_sock(ctx, skb, &state);
	if (flow_filter.nnetns && !netns_wanted(drop_netns(skb, sk, state)))
		return 0;
	inbound = !sk || BPF_CORE_READ(sk, __sk_common.skc_num) != bpf_ntohs(packet.source);
	no_loss = not_loss(class, state, inbound);
	if (no_loss && !drop_policy.report_all)
		return 0;
	if (only_counted(skb, &packet, sk, state, inbound, reason, no_loss))
		return 0;
	report_drop(skb, &packet, sk, state, inbound, reason, no_loss);
	return 0;
}
