/* SPDX-License-Identifier: (BSD-2-Clause OR GPL-2.0) */
/*
 * The few kernel types the probe reads, declared by hand instead of a
 * vmlinux.h dumped from the build machine's kernel.
 *
 * Every struct carries preserve_access_index, so each field access compiles
 * to a CO-RE relocation that libbpf resolves by name against the running
 * kernel's BTF at load time: the offsets written here are never used, only
 * the names. Fields the kernel nests in anonymous unions are declared flat;
 * libbpf finds them inside the anonymous members. Nothing here ties the
 * object to the kernel it was built on.
 */
#pragma once

#include <linux/types.h>
#include <linux/bpf.h>

#define AF_INET 2
#define AF_INET6 10
#define IPPROTO_TCP 6

/* include/net/tcp_states.h: ABI (/proc/net/tcp shows them). */
#define TCP_ESTABLISHED 1
#define TCP_SYN_SENT 2
#define TCP_SYN_RECV 3
#define TCP_LISTEN 10

/* include/net/tcp.h: the flags of a TCP header, as tcp_skb_cb keeps them. */
#define TCPHDR_SYN 0x02
#define TCPHDR_ACK 0x10

#pragma clang attribute push(__attribute__((preserve_access_index)), apply_to = record)

struct in6_addr {
	__u8 s6_addr[16];
};

struct ns_common {
	unsigned int inum;
};

struct net {
	struct ns_common ns;
};

typedef struct {
	struct net *net;
} possible_net_t;

struct sock_common {
	__be32 skc_daddr;
	__be32 skc_rcv_saddr;
	__be16 skc_dport;
	__u16 skc_num;
	unsigned short skc_family;
	volatile unsigned char skc_state;
	possible_net_t skc_net;
	struct in6_addr skc_v6_daddr;
	struct in6_addr skc_v6_rcv_saddr;
};

struct inode {
	unsigned long i_ino;
};

struct file {
	struct inode *f_inode;
};

struct socket {
	struct file *file;
};

struct kernfs_node {
	__u64 id;
};

struct cgroup {
	struct kernfs_node *kn;
};

struct sock_cgroup_data {
	struct cgroup *cgroup;
};

struct sock {
	struct sock_common __sk_common;
	__u16 sk_protocol;
	struct socket *sk_socket;
	struct sock_cgroup_data sk_cgrp_data;
};

struct inet_connection_sock {
	__u8 icsk_ca_state : 5;
	__u8 icsk_pending;
};

struct request_sock;

struct tcp_sock {
	__u32 segs_out;
	__u32 total_retrans;
	__u32 srtt_us;
	__u32 undo_marker;
	struct request_sock *fastopen_rsk;
};

struct request_sock {
	struct sock_common __req_common;
	__u8 num_retrans;
};

struct sk_buff {
	char cb[48];
};

/* tcp_flags is a __u8 on Linux 6.1 and a __u16 on 6.18: read it with
 * BPF_CORE_READ_BITFIELD_PROBED, which takes the running kernel's width. */
struct tcp_skb_cb {
	__u16 tcp_gso_segs;
	__u16 tcp_flags;
};

#pragma clang attribute pop
