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
#define ETH_P_IP 0x0800
#define ETH_P_IPV6 0x86DD

/* include/net/tcp_states.h: ABI (/proc/net/tcp shows them). */
#define TCP_ESTABLISHED 1
#define TCP_SYN_SENT 2
#define TCP_SYN_RECV 3
#define TCP_FIN_WAIT1 4
#define TCP_TIME_WAIT 6
#define TCP_CLOSE 7
#define TCP_CLOSE_WAIT 8
#define TCP_LAST_ACK 9
#define TCP_LISTEN 10
#define TCP_CLOSING 11
#define TCP_NEW_SYN_RECV 12

/* include/net/tcp.h: the flags of a TCP header, as tcp_skb_cb keeps them. */
#define TCPHDR_SYN 0x02
#define TCPHDR_ACK 0x10

/* include/uapi/linux/magic.h: the file system of every socket's file. */
#define SOCKFS_MAGIC 0x534F434B

/* include/linux/sched.h: task_struct.flags of a kernel thread. */
#define PF_KTHREAD 0x00200000

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

typedef struct {
	__s64 counter;
} atomic64_t;

struct sock_common {
	atomic64_t skc_cookie;
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

struct super_block {
	unsigned long s_magic;
};

struct inode {
	unsigned long i_ino;
	struct super_block *i_sb;
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

struct task_struct {
	unsigned int flags;
	int tgid;
};

struct sock {
	struct sock_common __sk_common;
	__u16 sk_protocol;
	struct socket *sk_socket;
	struct sock_cgroup_data sk_cgrp_data;
};

struct inet_connection_sock {
	__u32 icsk_rto;
	__u8 icsk_ca_state : 5;
	__u8 icsk_pending;
	__u8 icsk_backoff;
};

struct request_sock;

struct tcp_sock {
	__u32 segs_out;
	__u32 total_retrans;
	__u32 srtt_us;
	__u32 undo_marker;
	__u32 rcv_tstamp;
	struct request_sock *fastopen_rsk;
};

struct request_sock {
	struct sock_common __req_common;
	__u8 num_retrans;
};

struct tcp_request_sock {
	__u64 snt_synack;
};

struct net_device {
	int ifindex;
	possible_net_t nd_net;
};

struct sk_buff {
	char cb[48];
	struct sock *sk;
	struct net_device *dev;
	int skb_iif;
	__be16 protocol;
	__u16 transport_header;
	__u16 network_header;
	unsigned char *head;
};

struct seq_file;

struct bpf_iter_meta {
	struct seq_file *seq;
};

/* The context of an iterator over tasks' files: one call per open file. */
struct bpf_iter__task_file {
	struct bpf_iter_meta *meta;
	struct task_struct *task;
	struct file *file;
};

/* Only the names matter: CO-RE finds each one's value in the running kernel,
 * which renumbers this enum from release to release. */
enum skb_drop_reason {
	SKB_NOT_DROPPED_YET = 0,
	SKB_CONSUMED = 1,
};

/* tcp_flags is a __u8 on Linux 6.1 and a __u16 on 6.18: read it with
 * BPF_CORE_READ_BITFIELD_PROBED, which takes the running kernel's width. */
struct tcp_skb_cb {
	__u16 tcp_gso_segs;
	__u16 tcp_flags;
};

#pragma clang attribute pop

/* Wire formats (RFC 791, 8200, 9293): read from packet memory, never relocated. */
struct xp_iphdr {
	__u8 version_ihl;
	__u8 tos;
	__be16 tot_len;
	__be16 id;
	__be16 frag_off;
	__u8 ttl;
	__u8 protocol;
	__u16 check;
	__be32 saddr;
	__be32 daddr;
};

struct xp_ipv6hdr {
	__be32 version_flow;
	__be16 payload_len;
	__u8 nexthdr;
	__u8 hop_limit;
	__u8 saddr[16];
	__u8 daddr[16];
};

struct xp_tcphdr {
	__be16 source;
	__be16 dest;
	__be32 seq;
	__be32 ack_seq;
	__u8 doff;
	__u8 flags;
};
