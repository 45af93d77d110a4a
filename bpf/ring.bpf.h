/* SPDX-License-Identifier: (BSD-2-Clause OR GPL-2.0) */
/*
 * The ring buffer of struct xp_record (record.h) that user space reads: the
 * probe writes real records into it, the bench's program synthetic ones
 * (user space hands it the probe's map). User space may resize it before
 * load (a power of two of pages).
 */
#pragma once

#include <bpf/bpf_helpers.h>

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 1 << 20);
} records SEC(".maps");
