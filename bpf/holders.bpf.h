/* SPDX-License-Identifier: (BSD-2-Clause OR GPL-2.0) */
/*
 * Which processes hold the sockets user space asks about, in one pass over
 * every process's open files (an iterator over tasks' files, Linux 5.8+; the
 * kernel visits a thread only when it does not share its process's table).
 * Nothing attaches it to an event: user space runs it on demand
 * (xctl_probe/kernel/holders.py), once per batch of records whose sockets
 * have no known owner, where it would otherwise read every /proc/PID/fd, far
 * slower and with privileges over other processes' descriptors.
 */
#pragma once

#include "kernel.h"
#include <bpf/bpf_helpers.h>
/* struct xp_holder: from record.h, included before this file (cffi reads
 * record.h too, and takes no include guard). */

/* The socket inodes of one pass: user space fills it before and empties it after. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, XP_HOLDERS_WANTED);
	__type(key, __u64);
	__type(value, __u8);
} wanted_inodes SEC(".maps");

SEC("iter/task_file")
int xp_socket_holders(struct bpf_iter__task_file *ctx)
{
	struct task_struct *task = ctx->task;
	struct file *file = ctx->file;
	struct xp_holder holder;

	/* A socket's file is on sockfs, and nothing else is: an inode number
	 * alone could be another file system's (a socket bound to a path and
	 * opened with O_PATH has a socket's mode there). */
	if (!task || !file || file->f_inode->i_sb->s_magic != SOCKFS_MAGIC)
		return 0;
	holder.ino = file->f_inode->i_ino;
	if (!bpf_map_lookup_elem(&wanted_inodes, &holder.ino))
		return 0;
	holder.tgid = task->tgid;
	holder.unused = 0;
	bpf_seq_write(ctx->meta->seq, &holder, sizeof(holder));
	return 0;
}
