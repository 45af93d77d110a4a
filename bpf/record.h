/* SPDX-License-Identifier: (BSD-2-Clause OR GPL-2.0) */
/*
 * The one definition of what the BPF program hands to user space, and of
 * the drop policy user space hands it.
 *
 * clang compiles it into the BPF object; the cffi build feeds the same text
 * to cdef, and the Python decoder derives its unpacking from that.
 * tests/unit/test_layout.py compares the layout the BPF object carries in its BTF
 * with the one the decoder uses, so the two sides cannot drift apart.
 *
 * Rules that keep it readable by both: fixed-width types only, every field
 * naturally aligned, no implicit padding, only integer #defines.
 */

#define XP_ADDR_LEN 16

/* Which kernel hook produced the record. */
enum xp_source {
	XP_SRC_RETRANSMIT = 1,	/* tcp:tcp_retransmit_skb */
	XP_SRC_SYNACK = 2,	/* tcp:tcp_retransmit_synack */
	XP_SRC_CLOSE = 3,	/* tcp:tcp_destroy_sock, for a socket with retransmissions to settle */
	XP_SRC_DROP = 4,	/* skb:kfree_skb: a TCP packet the kernel dropped */
	XP_SRC_OWNER = 5,	/* sock:inet_sock_set_state at close(): the owner of a socket whose
				 * records went without one; it accounts for no segment */
};

/*
 * Bits of xp_record.flags. The kind of a retransmission (rto, fast, tlp,
 * syn, synack, noncongestion) is decided in user space from the raw facts a
 * record carries: xctl_probe/meaning/event.py documents the rule.
 */
enum xp_flag {
	/* The tracepoint has the 6.17+ layout (sk, skb, err): err is real. */
	XP_F_ERR_LAYOUT = 1,
	/* prev_retrans is the socket's counter at its previous record, or at
	 * its birth if it was born while the probe ran. Without it the probe
	 * has never seen the socket before. */
	XP_F_HISTORY = 2,
	/* tcp_sock.undo_marker was set. In the Loss state it tells how Loss was
	 * entered: the retransmission timer (tcp_enter_loss) sets an undo point;
	 * a loss that is not congestion (tcp_simple_retransmit after a path MTU
	 * drop, Fast Open data the SYN-ACK left unacknowledged) clears it. */
	XP_F_UNDO_MARKER = 4,
	/* A dropped packet that is no loss (enum xp_drop_class): only reported
	 * when user space asked for every drop. */
	XP_F_NOT_LOSS = 8,
	/* Set by user space only, in a record it makes of the drops a key's
	 * tally counted (struct xp_drop_tally): skb_segs is their number, the
	 * key gives the rest, daddr and dport are 0. */
	XP_F_COUNTED = 16,
};

struct xp_record {
	__u64 ts_ns;		/* bpf_ktime_get_ns(), CLOCK_MONOTONIC */
	__u64 cookie;		/* socket cookie: names one socket for the kernel's uptime, never
				 * reused, so per-flow state keyed by it cannot leak into another flow;
				 * before Linux 5.12 an id of the probe's own, top bit set
				 * (bpf/sock_state.bpf.h) */
	__u64 ino;		/* inode of the socket's file (the listener's for a SYN-ACK), 0 if none */
	__u64 cgroup_id;	/* cgroup v2 id of the socket (of its creator), 0 if unknown */
	__u32 netns;		/* inode of the socket's network namespace */
	__u32 skb_segs;		/* segments in the retransmitted skb; 0 in a close record */
	__u32 retrans;		/* segments the flow has retransmitted in its life, this one included */
	__u32 prev_retrans;	/* retrans at the previous record (XP_F_HISTORY): a line's segs is
				 * the rise between the two (xctl_probe/meaning/accounting.py) */
	__u32 sent;		/* segments the flow has sent in its life, retransmissions included */
	__u32 tgid;		/* process on the CPU: often not the owner (softirq), only a hint */
	__u32 srtt_us;		/* smoothed RTT of the flow, microseconds, 0 if none */
	__s32 err;		/* 0, or why the retransmission failed: -errno or NET_XMIT_* */
	__u32 flags;		/* enum xp_flag bits */
	__u16 family;		/* AF_INET or AF_INET6 */
	__u16 sport;		/* local port, host order */
	__u16 dport;		/* remote port, host order */
	__u16 tcp_flags;	/* TCP header flags of the retransmitted segment (FIN 0x01, SYN 0x02,
				 * ..., ACK 0x10); SYN|ACK for a SYN-ACK; 0 in a close record */
	__u8 state;		/* TCP state (TCP_ESTABLISHED = 1, ...); a drop's: of the socket the
				 * kernel named, any kind (TIME_WAIT too), 0 if none */
	__u8 source;		/* enum xp_source */
	__u8 ca_state;		/* inet_connection_sock.icsk_ca_state (TCP_CA_Open = 0, ...) */
	__u8 pending;		/* inet_connection_sock.icsk_pending: the timer that is due */
	__u8 saddr[XP_ADDR_LEN];	/* local address; IPv4 in the first 4 bytes */
	__u8 daddr[XP_ADDR_LEN];	/* remote address */
	__u32 reason;		/* a drop's enum skb_drop_reason, as the running kernel numbers it */
	__u32 ifindex;		/* a drop's network device, 0 if none */
	__u32 owner_tgid;	/* the process that connected or closed the socket, seen in its own
				 * context (the socket's owner after close() took its file away, or
				 * after the process exited); 0 if none yet */
	__u32 rto;		/* inet_connection_sock.icsk_rto: the retransmission timeout, jiffies */
	__u32 backoff;		/* icsk_backoff: retransmission timeouts in a row without progress */
	__u32 ack_age;		/* jiffies since the socket last received an ACK (rcv_tstamp) */
	__u8 owner_comm[16];	/* owner_tgid's comm at that moment */
};

/*
 * Whether a drop is a loss, by its reason: user space classifies each reason
 * the running kernel names (xctl_probe/meaning/drop_classes.py, by name, as
 * kernels renumber them) and hands the classes to the drop program before
 * load, in struct xp_drop_policy. A reason past the table is a loss.
 */
enum xp_drop_class {
	XP_DROP_LOSS = 0,		/* the network lost it or this host refused it */
	XP_DROP_NOT_LOSS = 1,		/* never a loss: a free at teardown, a duplicate */
	XP_DROP_NOT_LOSS_AFTER_FIN = 2,	/* no loss in a segment received after the peer's
					 * FIN, or by a closed socket (bpf/drops.bpf.h) */
	XP_DROP_NOT_ASKED = 3,		/* a reason --reason did not ask for: never reported */
};

/* Drop reasons the policy classifies, 0 up to this; about 130 in Linux 6.18. */
#define XP_DROP_REASONS 256

/* In the object's read-only section .rodata.drops, set before load. */
struct xp_drop_policy {
	__u8 report_all;			/* 1: report the drops that are no loss too */
	__u8 classes[XP_DROP_REASONS];		/* enum xp_drop_class, by reason */
	__u8 beyond;				/* the class of a reason past the table */
};

/*
 * Which flows get records at all (--port, --family, --netns), in the
 * object's read-only section .rodata.filter, set before load
 * (xctl_probe/kernel/flow_filter.py); all zero: every flow. A flow passes
 * when its local or remote port is one of ports, its namespace one of netns,
 * and its family one of families (each only when given).
 */
#define XP_FILTER_PORTS 8
#define XP_FILTER_NETNS 8

enum xp_filter_family {
	XP_FILTER_IPV4 = 1,	/* an IPv4-mapped IPv6 flow too, as lines report it */
	XP_FILTER_IPV6 = 2,
};

struct xp_filter {
	__u32 netns[XP_FILTER_NETNS];	/* namespace inodes, the first nnetns of them */
	__u16 ports[XP_FILTER_PORTS];	/* host order, the first nports of them */
	__u8 nports;
	__u8 nnetns;
	__u8 families;			/* enum xp_filter_family bits; 0: any */
	__u8 drops_only;		/* 1: only drops asked for (--reason, --kind drop):
					 * no socket's records at all */
};

/* TCP states (tcp_states.h, all below 16) and 0 for a drop without a socket. */
#define XP_DROP_STATES 16

/* The drop records the program put in the ring, by the socket's state (map
 * drop_records, one entry per reason and one for any reason past the table). */
struct xp_drop_counts {
	__u64 by_state[XP_DROP_STATES];
};

/*
 * A flood of drops is bounded in the kernel (bpf/drops.bpf.h). Drops are
 * keyed by where they land on this host: local address and port, reason,
 * the socket's state, loss or not (struct xp_drop_key). A key gets at most
 * XP_DROP_KEY_RECORDS records a second, and all keys together
 * XP_DROP_ALL_RECORDS; drops past either are only counted, in the key's
 * tally (map drop_tallies), which user space reads every second into one
 * line per key with the count (xctl_probe/kernel/drop_tallies.py). Every
 * drop is in a record or in a tally, never both.
 */
#define XP_DROP_KEY_RECORDS 500
#define XP_DROP_ALL_RECORDS 2000
/* Keys tallied at once; past them a drop is keyed by its reason and state
 * alone (laddr zero, lport 0). User space forgets keys idle for a minute. */
#define XP_DROP_KEYS 4096

struct xp_drop_key {
	__u8 laddr[XP_ADDR_LEN];	/* local address, as a record's saddr */
	__u32 netns;
	__u32 reason;
	__u16 family;
	__u16 lport;			/* local port, host order */
	__u8 state;			/* as a drop record's state */
	__u8 not_loss;			/* 1: the drops are no loss (XP_F_NOT_LOSS) */
	__u16 unused;			/* 0: the layout has no implicit padding */
};

/* One second's records of a key, or of all keys (map drop_window). */
struct xp_drop_window {
	__u64 start_ns;		/* bpf_ktime_get_ns() when the second began */
	__u32 records;		/* records given in it */
	__u32 unused;
};

struct xp_drop_tally {
	__u64 counted;		/* drops of the key that got no record, since the key was
				 * added: only ever increased */
	struct xp_drop_window window;
};

/*
 * What the socket holders' iterator (bpf/holders.bpf.h) writes for each
 * descriptor of a socket whose inode user space asked for: one per process
 * holding it.
 */
struct xp_holder {
	__u64 ino;		/* inode of the socket's file */
	__u32 tgid;		/* a process holding a descriptor for it */
	__u32 unused;		/* 0: the layout has no implicit padding */
};

/* Socket inodes one pass of the iterator can be asked about. */
#define XP_HOLDERS_WANTED 4096

/* Sockets whose state a kernel before 5.12 holds in a hash (bpf/sock_state.bpf.h). */
#define XP_SOCK_STATES 65536
