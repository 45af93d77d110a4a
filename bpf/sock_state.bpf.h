/* SPDX-License-Identifier: (BSD-2-Clause OR GPL-2.0) */
/*
 * What the probe knows of each socket, and the id that names it to user
 * space, on every kernel from 5.10.
 *
 * Linux 5.12 and later let tracing programs keep it with the socket itself
 * (socket-local storage, "bpf: Allow using bpf_sk_storage in
 * FENTRY/FEXIT/RAW_TP", 5.11) and name the socket by the kernel's own cookie
 * ("bpf: Expose bpf_get_socket_cookie to tracing programs", 5.12): the
 * storage is freed with the socket, so nothing outlives it, and it needs no
 * bound. Before, both helpers are unknown to a tracing program, and the
 * state lives in a hash keyed by the socket's address, which the socket's
 * end (tcp_destroy_sock) clears, and the id is the probe's own, made when
 * the state is. User space finds out which at load: it sets sock_helpers
 * to 0 and loads again when the kernel refused one of those two helpers
 * (xctl_probe/kernel/sock_helpers.py). The verifier prunes the branch a
 * read-only constant rules out, so the helper calls of the other path never
 * reach a kernel that does not know them.
 *
 * A header of probe.bpf.c's; it takes record.h from it (cffi reads record.h
 * as it is, so it has no include guard).
 */
#pragma once

#include "kernel.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>

/* 1: socket-local storage and the kernel's cookies; 0: the hash and ids of
 * the probe's own. A section of its own, so user space can set it alone. */
const volatile __u8 sock_helpers SEC(".rodata.sockets") = 1;

struct xp_sock_state {
	/* total_retrans at the socket's last record that reached the ring, or
	 * at its birth: user space counts a record's segments as the rise since. */
	__u32 reported;
	/* Who connected or closed it, for xp_record.owner_tgid and owner_comm. */
	__u32 owner_tgid;
	char owner_comm[16];
	__u8 flags;	/* enum xp_sock_flag */
	__u8 unused[7];
	/* The socket's id where the kernel gives no cookie (sock_helpers 0). */
	__u64 id;
};

enum xp_sock_flag {
	/* It gave a record: it owes user space a close record. */
	XP_S_RECORDED = 1,
	/* Born from a listener, baseline not yet taken. Its counter starts at
	 * the handshake's SYN-ACK retransmissions, which their own records
	 * already reported, and tcp_create_openreq_child() copies them in only
	 * after the state change: the baseline is taken when the handshake
	 * completes. If that run was skipped, the socket has no history (its
	 * first record counts its own segments): never counted twice. A Fast
	 * Open child is the exception: born on the SYN, before any SYN-ACK
	 * retransmission, its baseline of 0 is right while it is one. */
	XP_S_BASE_AT_ESTABLISHED = 2,
	/* Made at close() to remember the owner, for a socket older than the
	 * probe: no baseline, its first record counts its own segments. */
	XP_S_NO_BASE = 4,
};

struct {
	__uint(type, BPF_MAP_TYPE_SK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, int);
	__type(value, struct xp_sock_state);
} sock_state SEC(".maps");

/*
 * The hash of sock_helpers 0, by the socket's address. Least recently used
 * states go first when it is full (more sockets alive than XP_SOCK_STATES
 * that connected, were accepted, closed or retransmitted while the probe
 * ran): such a socket's next record starts it afresh, without history and
 * under a new id, as a socket older than the probe would. User space
 * shrinks it to one entry where socket-local storage serves.
 */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, XP_SOCK_STATES);
	__type(key, __u64);
	__type(value, struct xp_sock_state);
} sock_state_by_addr SEC(".maps");

/*
 * An id of the probe's own, never 0 and never a cookie of the kernel's
 * (those count up from 1): the time in nanoseconds and the CPU, so two made
 * at once on two CPUs differ. It repeats after 2^53 ns (104 days), long
 * after user space forgot the flow that had it.
 */
#define XP_OWN_ID (1ULL << 63)

static __always_inline __u64 own_id(void)
{
	return XP_OWN_ID | (bpf_ktime_get_ns() << 10 & ~XP_OWN_ID) |
	       (bpf_get_smp_processor_id() & 0x3ff);
}

static __always_inline struct xp_sock_state *sock_state_get(struct sock *sk)
{
	__u64 addr = (__u64)sk;

	if (sock_helpers)
		return bpf_sk_storage_get(&sock_state, sk, 0, 0);
	return bpf_map_lookup_elem(&sock_state_by_addr, &addr);
}

/* The socket's state, made (all zero but its id) if it had none. */
static __always_inline struct xp_sock_state *sock_state_make(struct sock *sk)
{
	struct xp_sock_state fresh = {};
	__u64 addr = (__u64)sk;
	struct xp_sock_state *st;

	if (sock_helpers)
		return bpf_sk_storage_get(&sock_state, sk, 0, BPF_SK_STORAGE_GET_F_CREATE);
	st = bpf_map_lookup_elem(&sock_state_by_addr, &addr);
	if (st)
		return st;
	fresh.id = own_id();
	/* Another CPU making it at the same moment wins; both then use its. */
	bpf_map_update_elem(&sock_state_by_addr, &addr, &fresh, BPF_NOEXIST);
	return bpf_map_lookup_elem(&sock_state_by_addr, &addr);
}

/* The state of a socket just born (a listener's child), all zero but its
 * id: in the hash, whatever its address held was a dead socket's. */
static __always_inline struct xp_sock_state *sock_state_new(struct sock *sk)
{
	struct xp_sock_state fresh = {};
	__u64 addr = (__u64)sk;

	if (sock_helpers)
		return bpf_sk_storage_get(&sock_state, sk, 0, BPF_SK_STORAGE_GET_F_CREATE);
	fresh.id = own_id();
	bpf_map_update_elem(&sock_state_by_addr, &addr, &fresh, BPF_ANY);
	return bpf_map_lookup_elem(&sock_state_by_addr, &addr);
}

/* At the socket's end: its address may soon be another socket's. */
static __always_inline void sock_state_forget(struct sock *sk)
{
	__u64 addr = (__u64)sk;

	if (!sock_helpers)
		bpf_map_delete_elem(&sock_state_by_addr, &addr);
}

/* What names the socket in its records (xp_record.cookie): where the hash
 * had no room for its state, an id of the record's own, so that it shares
 * its flow with no other socket. */
static __always_inline __u64 sock_id(struct sock *sk, const struct xp_sock_state *st)
{
	if (sock_helpers)
		return bpf_get_socket_cookie(sk);
	return st ? st->id : own_id();
}

static __always_inline __u64 mixed(__u64 h, __u64 word)
{
	h = (h ^ word) * 0x9e3779b97f4a7c15ULL;
	return h ^ h >> 29;
}

/*
 * What names a handshake's request socket, which has no state of the
 * probe's: without the kernel's cookie, a hash of its flow (filled in r:
 * no two live handshakes share one) and of the time its first SYN-ACK went
 * out, which its retransmissions share and a later handshake of the same
 * flow does not.
 */
static __always_inline __u64 request_id(const struct request_sock *req, const struct xp_record *r)
{
	const struct tcp_request_sock *treq = (const void *)req;
	__u64 addrs[4];
	__u64 h;

	if (sock_helpers)
		return bpf_get_socket_cookie((void *)req);
	__builtin_memcpy(addrs, r->saddr, sizeof(r->saddr));
	__builtin_memcpy(&addrs[2], r->daddr, sizeof(r->daddr));
	h = mixed(BPF_CORE_READ(treq, snt_synack),
		  (__u64)r->sport << 48 | (__u64)r->dport << 32 | r->netns);
	h = mixed(h, addrs[0]);
	h = mixed(h, addrs[1]);
	h = mixed(h, addrs[2]);
	h = mixed(h, addrs[3]);
	return XP_OWN_ID | h >> 1;
}
