/* SPDX-License-Identifier: (BSD-2-Clause OR GPL-2.0) */
/*
 * Differences between kernels, each decided by CO-RE at load time against the
 * running kernel's BTF, so one object serves them all. Each cites the change.
 */
#pragma once

#include "kernel.h"
#include <bpf/bpf_core_read.h>

/*
 * Linux 6.17, "tcp: trace retransmit failures in tcp_retransmit_skb": the
 * tracepoint moved into __tcp_retransmit_skb() with a third argument,
 * `int err`, and now also fires for failed retransmissions. It left the
 * tcp_event_sk_skb class for a class of its own, whose raw event struct
 * (trace_event_raw_tcp_retransmit_skb) carries `err`. Before, the raw context
 * has two arguments and reading a third one is rejected by the verifier; a
 * branch on this constant is pruned before verification, so the old path is
 * what runs there.
 */
struct trace_event_raw_tcp_retransmit_skb___x {
	int err;
} __attribute__((preserve_access_index));

static __always_inline int retransmit_tp_has_err(void)
{
	return bpf_core_field_exists(struct trace_event_raw_tcp_retransmit_skb___x, err);
}

/*
 * Linux without CONFIG_IPV6 has no skc_v6_* fields; reading them would make
 * the whole object fail to load there.
 */
static __always_inline int sock_has_ipv6(void)
{
	return bpf_core_field_exists(struct sock_common, skc_v6_daddr);
}

/*
 * Linux 5.15, "bpf, cgroups: Fix cgroup v2 fallback on v1/v2 mixed mode":
 * sock_cgroup_data lost its packed union for a plain `struct cgroup
 * *cgroup`. Before, its u64 `val` is the cgroup's address, unless its lowest
 * bit says it holds cgroup v1's net_cls or net_prio data instead; the
 * kernel's sock_cgroup_ptr() then answers the root, and the socket's cgroup
 * is unknown here too (0).
 */
struct sock_cgroup_data___old {
	__u64 val;
} __attribute__((preserve_access_index));

static __always_inline __u64 sock_cgroup_id(const struct sock *sk)
{
	const struct sock_cgroup_data___old *old;
	__u64 val;

	if (bpf_core_field_exists(struct sock_cgroup_data, cgroup))
		return sk->sk_cgrp_data.cgroup->kn->id;
	old = (const void *)&sk->sk_cgrp_data;
	val = BPF_CORE_READ(old, val);
	if (!val || val & 1)
		return 0;
	return BPF_CORE_READ((struct cgroup *)val, kn, id);
}

/*
 * Linux 5.17, "net: skb: introduce kfree_skb_reason()": the kfree_skb
 * tracepoint gained `enum skb_drop_reason reason` (its raw event struct a
 * `reason` field); before, a drop cannot be told from a free. User space does
 * not load the drop program on such a kernel; this guards the read anyway.
 */
struct trace_event_raw_kfree_skb___x {
	enum skb_drop_reason reason;
	void *rx_sk;
} __attribute__((preserve_access_index));

static __always_inline int kfree_skb_has_reason(void)
{
	return bpf_core_field_exists(struct trace_event_raw_kfree_skb___x, reason);
}

/*
 * Linux 6.11, "net: add rx_sk to trace_kfree_skb": a fourth argument, the
 * receiving socket when the kernel knows it.
 */
static __always_inline int kfree_skb_has_rx_sk(void)
{
	return bpf_core_field_exists(struct trace_event_raw_kfree_skb___x, rx_sk);
}
