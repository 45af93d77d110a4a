// SPDX-License-Identifier: (BSD-2-Clause OR GPL-2.0)
/*
 * Tests only: the probe's object as shipped, plus one program whose every
 * run makes the kernel skip a run of it. xp_nested runs on the
 * bpf_trace_printk tracepoint and prints, which fires that tracepoint again
 * on the same CPU while xp_nested still runs there: the kernel does not run a
 * program again where it is running, and counts the run it skipped in the
 * program's recursion_misses. xp_printk, run through BPF_PROG_TEST_RUN,
 * prints once a run: each of its runs makes exactly one skipped run.
 */
#include "../../bpf/probe.bpf.c"

SEC("tp_btf/bpf_trace_printk")
int BPF_PROG(xp_nested, const char *text)
{
	bpf_printk("xp_nested");
	return 0;
}

SEC("socket")
int xp_printk(struct __sk_buff *skb)
{
	bpf_printk("xp_printk");
	return 0;
}
