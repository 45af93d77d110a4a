/* SPDX-License-Identifier: (BSD-2-Clause OR GPL-2.0) */
/*
 * Which flows get a record at all: --port, --family and --netns, decided in
 * the kernel so that a flow filtered out costs no ring record and no drop
 * tally. Every program that reserves a record asks here first; the
 * bookkeeping of a socket's state (inet_sock_set_state) does not, as its
 * local port is still 0 at SYN_SENT (tcp_v4_connect sets the state before
 * inet_hash_connect picks the port). Like ring.bpf.h, it takes record.h from
 * the file that includes it.
 */
#pragma once

#include "kernel.h"
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_endian.h>
#include "core_fixes.bpf.h"

/*
 * Set by user space before load (xctl_probe/kernel/flow_filter.py),
 * read-only once loaded: the verifier knows its values, and a filter not
 * given is pruned away.
 */
const volatile struct xp_filter flow_filter SEC(".rodata.filter") = {};

static __always_inline int port_wanted(__u16 sport, __u16 dport)
{
	int i;

	if (!flow_filter.nports)
		return 1;
	for (i = 0; i < XP_FILTER_PORTS && i < flow_filter.nports; i++)
		if (flow_filter.ports[i] == sport || flow_filter.ports[i] == dport)
			return 1;
	return 0;
}

static __always_inline int netns_wanted(__u32 netns)
{
	int i;

	if (!flow_filter.nnetns)
		return 1;
	for (i = 0; i < XP_FILTER_NETNS && i < flow_filter.nnetns; i++)
		if (flow_filter.netns[i] == netns)
			return 1;
	return 0;
}

static __always_inline int v4_mapped(const __u8 *addr)
{
	const __u32 *words = (const __u32 *)addr;

	return words[0] == 0 && words[1] == 0 && words[2] == bpf_htonl(0xffff);
}

/* As user space reports a flow's family (xctl_probe/meaning/event.py): an
 * IPv6 flow between two IPv4-mapped addresses is IPv4. */
static __always_inline int family_wanted(__u16 family, const __u8 *saddr, const __u8 *daddr)
{
	int ipv6 = family == AF_INET6 && !(v4_mapped(saddr) && v4_mapped(daddr));

	return !flow_filter.families ||
	       flow_filter.families & (ipv6 ? XP_FILTER_IPV6 : XP_FILTER_IPV4);
}

/*
 * A socket's flow (or a request socket's), read as fill_flow() reads it.
 * None when only drops are asked for: a retransmission's, owner's or close
 * record would be a line user space leaves out, and in a storm such records
 * would fill the ring the drops need.
 */
static __always_inline int sock_wanted(const struct sock_common *skc)
{
	__u8 saddr[XP_ADDR_LEN] = {}, daddr[XP_ADDR_LEN] = {};
	__u16 family;

	if (flow_filter.drops_only)
		return 0;
	if (!port_wanted(skc->skc_num, bpf_ntohs(skc->skc_dport)))
		return 0;
	if (flow_filter.nnetns && !netns_wanted(skc->skc_net.net->ns.inum))
		return 0;
	if (!flow_filter.families)
		return 1;
	family = skc->skc_family;
	if (family == AF_INET6 && sock_has_ipv6()) {
		BPF_CORE_READ_INTO(&saddr, skc, skc_v6_rcv_saddr);
		BPF_CORE_READ_INTO(&daddr, skc, skc_v6_daddr);
	}
	return family_wanted(family, saddr, daddr);
}
