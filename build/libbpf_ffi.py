"""cffi build script for ``xctl_probe._libbpf``, wired through ``cffi_modules``.

The extension binds the part of libbpf the probe uses (open, load, attach, ring
buffer) and declares ``struct xp_record`` from ``bpf/record.h``, the same header
the BPF program is compiled with. A few small C helpers live here because they
must be C: the libbpf print callback (variadic) and the ring buffer sample
callback, which copies records into one batch that Python decodes in bulk
instead of paying a Python call per record.
"""

import os
import sysconfig
from pathlib import Path

import cffi

ROOT = Path(__file__).resolve().parent.parent
RECORD_H = ROOT / "bpf" / "record.h"

# cdef does not know the kernel's fixed-width type names used by record.h.
KERNEL_TYPES = """
typedef uint8_t __u8;
typedef uint16_t __u16;
typedef uint32_t __u32;
typedef int32_t __s32;
typedef uint64_t __u64;
"""

LIBBPF_CDEF = """
struct bpf_object;
struct bpf_program;
struct bpf_map;
struct bpf_link;

struct bpf_object_open_opts {
    size_t sz;
    const char *btf_custom_path;
    ...;
};

struct bpf_object *bpf_object__open_file(const char *path,
                                         const struct bpf_object_open_opts *opts);
int bpf_object__load(struct bpf_object *obj);
void bpf_object__close(struct bpf_object *obj);
struct bpf_program *bpf_object__next_program(const struct bpf_object *obj,
                                             struct bpf_program *prog);
struct bpf_program *bpf_object__find_program_by_name(const struct bpf_object *obj,
                                                     const char *name);
const char *bpf_program__name(const struct bpf_program *prog);
const char *bpf_program__section_name(const struct bpf_program *prog);
int bpf_program__fd(const struct bpf_program *prog);
int bpf_program__set_autoload(struct bpf_program *prog, _Bool autoload);
_Bool bpf_program__autoload(const struct bpf_program *prog);
struct bpf_link *bpf_program__attach(const struct bpf_program *prog);
int bpf_link__destroy(struct bpf_link *link);
struct bpf_map *bpf_object__find_map_by_name(const struct bpf_object *obj,
                                             const char *name);
int bpf_map__fd(const struct bpf_map *map);
int bpf_map__set_max_entries(struct bpf_map *map, uint32_t max_entries);
int bpf_map__set_initial_value(struct bpf_map *map, const void *data, size_t size);
int bpf_map_lookup_elem(int fd, const void *key, void *value);
int bpf_map__reuse_fd(struct bpf_map *map, int fd);
struct bpf_iter_attach_opts;
struct bpf_link *bpf_program__attach_iter(const struct bpf_program *prog,
                                          const struct bpf_iter_attach_opts *opts);
int bpf_link__fd(const struct bpf_link *link);

/* Helpers defined below, in C. */
void xp_capture_libbpf_log(void);
void xp_reset_libbpf_log(void);
const char *xp_libbpf_log(void);
int xp_test_run(int prog_fd);
int xp_test_run_data(int prog_fd, const void *data, uint32_t size, uint32_t repeat);
int xp_enable_run_time_stats(void);
int xp_next_program(uint32_t *id, char *name, size_t name_size, uint64_t *run_time_ns,
                    uint64_t *run_cnt);
int xp_recursion_misses(const int *prog_fds, uint32_t count, uint64_t *misses);

struct xp_enum_member {
    char type[64];
    char name[96];
    int64_t value;
};
int xp_btf_enum_members(const char *path, const char *needle, struct xp_enum_member *out,
                        int max);

long xp_socket_holders(int link_fd, int wanted_fd, const uint64_t *inodes, uint32_t count,
                       struct xp_holder *out, long room);
long xp_drop_tallies(int fd, struct xp_drop_key *keys, struct xp_drop_tally *tallies,
                     long room);
int bpf_map_delete_elem(int fd, const void *key);

struct xp_batch;
struct xp_batch *xp_batch_new(int ring_map_fd, size_t max_records);
int xp_batch_epoll_fd(struct xp_batch *b);
int xp_batch_fill(struct xp_batch *b);
int xp_batch_more(struct xp_batch *b);
long xp_batch_count_all(struct xp_batch *b);
const void *xp_batch_data(struct xp_batch *b);
void xp_batch_free(struct xp_batch *b);
"""

C_SOURCE = r"""
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <linux/types.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <bpf/btf.h>
#include <fcntl.h>
#include <linux/btf.h>
#include <sys/stat.h>
#include "record.h"

/*
 * libbpf prints to stderr by default, and the probe's stderr is a pipe that
 * nobody reads. Keep instead every warning since the last reset, whole:
 * libbpf names the root cause first ("failed to find kernel BTF type ID of
 * ...") and only then the consequences, and when the kernel refuses a
 * program it loads it again with a log and passes on the verifier's log,
 * which can run to megabytes, as one message.
 */
static char *xp_log;
static size_t xp_log_len, xp_log_cap;

static int xp_print(enum libbpf_print_level level, const char *fmt, va_list args)
{
    va_list measure;
    int n;
    size_t cap;
    char *grown;

    if (level == LIBBPF_DEBUG)
        return 0;
    va_copy(measure, args);
    n = vsnprintf(NULL, 0, fmt, measure);
    va_end(measure);
    if (n <= 0)
        return 0;
    if (xp_log_len + n + 1 > xp_log_cap) {
        cap = 2 * (xp_log_len + n + 1);
        grown = realloc(xp_log, cap);
        if (!grown)
            return 0;
        xp_log = grown;
        xp_log_cap = cap;
    }
    vsnprintf(xp_log + xp_log_len, n + 1, fmt, args);
    xp_log_len += n;
    return 0;
}

void xp_capture_libbpf_log(void)
{
    libbpf_set_print(xp_print);
}

void xp_reset_libbpf_log(void)
{
    free(xp_log);
    xp_log = NULL;
    xp_log_len = xp_log_cap = 0;
}

const char *xp_libbpf_log(void)
{
    return xp_log ? xp_log : "";
}

/* Runs a socket-filter program ``repeat`` times, in the kernel, on a packet
 * whose payload is ``data``: its last return value, or -errno. The kernel
 * takes the packet's first 14 bytes for an Ethernet header and shows the
 * program what follows. */
int xp_test_run_data(int prog_fd, const void *data, uint32_t size, uint32_t repeat)
{
    enum { ETH_HEADER = 14 };
    unsigned char packet[64] = {0};
    LIBBPF_OPTS(bpf_test_run_opts, opts, .data_in = packet, .data_size_in = sizeof(packet),
                .repeat = repeat);
    int err;

    if (size > sizeof(packet) - ETH_HEADER)
        return -EINVAL;
    if (size)
        memcpy(packet + ETH_HEADER, data, size);
    err = bpf_prog_test_run_opts(prog_fd, &opts);
    return err ? -errno : (int)opts.retval;
}

/* Runs a socket-filter program once on a dummy packet; its return value, or -errno. */
int xp_test_run(int prog_fd)
{
    return xp_test_run_data(prog_fd, NULL, 0, 1);
}

/* Turns on the kernel's per-program run time and count until the returned
 * descriptor is closed (so a crash cannot leave it on); -errno on failure. */
int xp_enable_run_time_stats(void)
{
    int fd = bpf_enable_stats(BPF_STATS_RUN_TIME);

    return fd < 0 ? -errno : fd;
}

/* A program's full name: the kernel keeps only 15 characters of it in
 * bpf_prog_info.name, the program's BTF has all of it. */
static void xp_full_name(const struct bpf_prog_info *info, struct bpf_func_info *func,
                         char *name, size_t name_size)
{
    struct btf *btf;
    const struct btf_type *type;

    snprintf(name, name_size, "%s", info->name);
    if (!info->btf_id || !info->nr_func_info)
        return;
    btf = btf__load_from_kernel_by_id(info->btf_id);
    if (!btf)
        return;
    type = btf__type_by_id(btf, func->type_id);
    if (type)
        snprintf(name, name_size, "%s", btf__name_by_offset(btf, type->name_off));
    btf__free(btf);
}

/* The loaded program after *id: its id, name and run statistics; -errno
 * (-ENOENT past the last). */
int xp_next_program(uint32_t *id, char *name, size_t name_size, uint64_t *run_time_ns,
                    uint64_t *run_cnt)
{
    struct bpf_prog_info info;
    struct bpf_func_info func;
    uint32_t len = sizeof(info);
    int fd, err;

    for (;;) {
        if (bpf_prog_get_next_id(*id, id))
            return -errno;
        fd = bpf_prog_get_fd_by_id(*id);
        if (fd >= 0)
            break;
        if (errno != ENOENT)
            return -errno;
    }
    memset(&info, 0, sizeof(info));
    err = bpf_obj_get_info_by_fd(fd, &info, &len);
    if (!err && info.nr_func_info) {
        /* Ask again, with room for the first function's BTF record: the program's own. */
        memset(&info, 0, sizeof(info));
        info.nr_func_info = 1;
        info.func_info_rec_size = sizeof(func);
        info.func_info = (uint64_t)(uintptr_t)&func;
        len = sizeof(info);
        err = bpf_obj_get_info_by_fd(fd, &info, &len);
    }
    err = err ? -errno : 0;
    close(fd);
    if (err)
        return err;
    xp_full_name(&info, &func, name, name_size);
    *run_time_ns = info.run_time_ns;
    *run_cnt = info.run_cnt;
    return 0;
}

/* The runs of these programs the kernel skipped since they were loaded
 * (bpf_prog_info.recursion_misses, Linux 5.12+; a program is not run again on
 * a CPU where it is already running), summed into *misses: 0, or -errno. */
int xp_recursion_misses(const int *prog_fds, uint32_t count, uint64_t *misses)
{
    struct bpf_prog_info info;
    uint64_t sum = 0;
    uint32_t i, len;

    for (i = 0; i < count; i++) {
        memset(&info, 0, sizeof(info));
        len = sizeof(info);
        if (bpf_obj_get_info_by_fd(prog_fds[i], &info, &len))
            return -errno;
        sum += info.recursion_misses;
    }
    *misses = sum;
    return 0;
}

struct xp_enum_member {
    char type[64];
    char name[96];
    int64_t value;
};

/* Bytes that follow a struct btf_type of this kind; -1 for a kind unknown here. */
static long xp_btf_extra(uint32_t kind, uint32_t vlen)
{
    switch (kind) {
    case BTF_KIND_INT: case BTF_KIND_VAR: case BTF_KIND_DECL_TAG:
        return 4;
    case BTF_KIND_PTR: case BTF_KIND_FWD: case BTF_KIND_TYPEDEF: case BTF_KIND_VOLATILE:
    case BTF_KIND_CONST: case BTF_KIND_RESTRICT: case BTF_KIND_FUNC: case BTF_KIND_FLOAT:
    case BTF_KIND_TYPE_TAG:
        return 0;
    case BTF_KIND_ARRAY:
        return sizeof(struct btf_array);
    case BTF_KIND_STRUCT: case BTF_KIND_UNION:
        return (long)vlen * sizeof(struct btf_member);
    case BTF_KIND_ENUM:
        return (long)vlen * sizeof(struct btf_enum);
    case BTF_KIND_FUNC_PROTO:
        return (long)vlen * sizeof(struct btf_param);
    case BTF_KIND_DATASEC:
        return (long)vlen * sizeof(struct btf_var_secinfo);
    case BTF_KIND_ENUM64:
        return (long)vlen * sizeof(struct btf_enum64);
    default:
        return -1;
    }
}

/*
 * The members of every enum in a BTF file whose name contains ``needle``
 * (name, member, value), walking the file's types directly: libbpf's parser
 * would hold the kernel's 5 MB of BTF twice over, and the probe needs only a
 * few enums. Returns how many there are (more than ``max`` means: call again
 * with room for them all), or -errno (-EPROTO: not BTF this code knows).
 */
int xp_btf_enum_members(const char *path, const char *needle, struct xp_enum_member *out,
                        int max)
{
    const struct btf_header *hdr;
    const char *types, *strings;
    unsigned char *data = NULL;
    struct stat st;
    size_t size = 0, capacity = 0, off;
    ssize_t got;
    int fd, count = 0, err = 0;

    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    /* Room for the end-of-file read too, so a file of the size stat() gives is
     * read without growing the buffer; a file that grew is read all the same. */
    capacity = fstat(fd, &st) == 0 && st.st_size > 0 ? (size_t)st.st_size + 1 : 1 << 20;
    data = malloc(capacity);
    if (!data) {
        err = -ENOMEM;
        goto out;
    }
    for (;;) {
        if (size == capacity) {
            unsigned char *bigger;

            capacity *= 2;
            bigger = realloc(data, capacity);
            if (!bigger) {
                err = -ENOMEM;
                goto out;
            }
            data = bigger;
        }
        got = read(fd, data + size, capacity - size);
        if (got < 0) {
            err = -errno;
            goto out;
        }
        if (!got)
            break;
        size += got;
    }
    hdr = (const void *)data;
    if (size < sizeof(*hdr) || hdr->magic != BTF_MAGIC ||
        (size_t)hdr->hdr_len + hdr->type_off + hdr->type_len > size ||
        (size_t)hdr->hdr_len + hdr->str_off + hdr->str_len > size) {
        err = -EPROTO;
        goto out;
    }
    types = (const char *)data + hdr->hdr_len + hdr->type_off;
    strings = (const char *)data + hdr->hdr_len + hdr->str_off;
    for (off = 0; off + sizeof(struct btf_type) <= hdr->type_len;) {
        const struct btf_type *t = (const void *)(types + off);
        uint32_t kind = BTF_INFO_KIND(t->info), vlen = BTF_INFO_VLEN(t->info), i;
        long extra = xp_btf_extra(kind, vlen);
        const char *name;

        if (extra < 0 || off + sizeof(*t) + extra > hdr->type_len ||
            t->name_off >= hdr->str_len) {
            err = -EPROTO;
            goto out;
        }
        name = strings + t->name_off;
        if ((kind == BTF_KIND_ENUM || kind == BTF_KIND_ENUM64) && strstr(name, needle)) {
            for (i = 0; i < vlen; i++, count++) {
                uint32_t member_off;
                int64_t value;

                if (kind == BTF_KIND_ENUM) {
                    const struct btf_enum *e = (const void *)(t + 1);

                    member_off = e[i].name_off;
                    value = BTF_INFO_KFLAG(t->info) ? (int64_t)e[i].val : (uint32_t)e[i].val;
                } else {
                    const struct btf_enum64 *e = (const void *)(t + 1);

                    member_off = e[i].name_off;
                    value = (int64_t)(((uint64_t)e[i].val_hi32 << 32) | e[i].val_lo32);
                }
                if (count >= max || member_off >= hdr->str_len)
                    continue;
                snprintf(out[count].type, sizeof(out[count].type), "%s", name);
                snprintf(out[count].name, sizeof(out[count].name), "%s", strings + member_off);
                out[count].value = value;
            }
        }
        off += sizeof(*t) + extra;
    }
out:
    free(data);
    close(fd);
    return err ? err : count;
}

/* Runs the iterator of link_fd to its end: the holders it wrote (the first
 * `room` of them in `out`), or -errno. */
static long xp_read_holders(int link_fd, struct xp_holder *out, long room)
{
    size_t bytes = 0, capacity = room * sizeof(*out);
    char spill[4096];
    long err = 0;
    ssize_t got;
    int fd = bpf_iter_create(link_fd);

    if (fd < 0)
        return -errno;
    /* A holder may come in two reads: the bytes go on where the last stopped. */
    do {
        if (bytes < capacity)
            got = read(fd, (char *)out + bytes, capacity - bytes);
        else
            got = read(fd, spill, sizeof(spill));
        if (got < 0 && errno != EINTR)
            err = -errno;
        else if (got > 0)
            bytes += got;
    } while (got && !err);
    close(fd);
    return err ? err : (long)(bytes / sizeof(*out));
}

/*
 * One pass of the socket holders' iterator (bpf/holders.bpf.h) for `count`
 * socket inodes, which are its wanted inodes for this pass only. Returns
 * the holders found, of which the first `room` are in `out` (more than
 * `room`: ask again with room enough), or -errno.
 */
long xp_socket_holders(int link_fd, int wanted_fd, const uint64_t *inodes, uint32_t count,
                       struct xp_holder *out, long room)
{
    static uint8_t wanted[XP_HOLDERS_WANTED];
    uint32_t added = count;
    long found;

    if (count > XP_HOLDERS_WANTED)
        return -E2BIG;
    memset(wanted, 1, count);
    found = bpf_map_update_batch(wanted_fd, inodes, wanted, &added, NULL) ? -errno
            : xp_read_holders(link_fd, out, room);
    /* Those added, even by an update that failed part way. */
    if (added && bpf_map_delete_batch(wanted_fd, inodes, &added, NULL) && found >= 0)
        found = -errno;
    return found;
}

/*
 * Every key of the drop tallies (bpf/drops.bpf.h) with its tally, at most
 * `room`: the number read, or -errno. Only the caller deletes keys, so the
 * walk never loses its place.
 */
long xp_drop_tallies(int fd, struct xp_drop_key *keys, struct xp_drop_tally *tallies,
                     long room)
{
    const struct xp_drop_key *prev = NULL;
    long n = 0;

    while (n < room && !bpf_map_get_next_key(fd, prev, &keys[n])) {
        if (bpf_map_lookup_elem(fd, &keys[n], &tallies[n]))
            return -errno;
        prev = &keys[n++];
    }
    return n < room && errno != ENOENT ? -errno : n;
}

struct xp_batch {
    struct ring_buffer *rb;
    size_t max_records;
    size_t count;
    int full;
    int count_only;
    struct xp_record records[];
};

static int xp_on_record(void *ctx, void *data, size_t size)
{
    struct xp_batch *b = ctx;

    if (b->count_only) {
        b->count++;
        return 0;
    }
    if (size != sizeof(struct xp_record))
        return -EPROTO;
    memcpy(&b->records[b->count++], data, sizeof(struct xp_record));
    if (b->count == b->max_records) {
        /* libbpf has consumed this record; a negative return stops it there. */
        b->full = 1;
        return -ENOSPC;
    }
    return 0;
}

struct xp_batch *xp_batch_new(int ring_map_fd, size_t max_records)
{
    struct xp_batch *b;

    if (!max_records) {
        errno = EINVAL;
        return NULL;
    }
    b = calloc(1, sizeof(*b) + max_records * sizeof(struct xp_record));
    if (!b)
        return NULL;
    b->max_records = max_records;
    b->rb = ring_buffer__new(ring_map_fd, xp_on_record, b, NULL);
    if (!b->rb) {
        int err = errno;

        free(b);
        errno = err;
        return NULL;
    }
    return b;
}

int xp_batch_epoll_fd(struct xp_batch *b)
{
    return ring_buffer__epoll_fd(b->rb);
}

/* Copies what the ring holds, up to a full batch: the record count, or -errno. */
int xp_batch_fill(struct xp_batch *b)
{
    int err;

    b->count = 0;
    b->full = 0;
    err = ring_buffer__consume(b->rb);
    if (err < 0 && !b->full)
        return err;
    return (int)b->count;
}

/* Consumes everything the ring holds, only counting the records: the
 * fastest a reader of this ring can go, for the bench to compare with. */
long xp_batch_count_all(struct xp_batch *b)
{
    int err;

    b->count = 0;
    b->count_only = 1;
    err = ring_buffer__consume(b->rb);
    b->count_only = 0;
    return err < 0 ? err : (long)b->count;
}

/* Whether the last fill stopped because the batch was full, not the ring empty. */
int xp_batch_more(struct xp_batch *b)
{
    return b->full;
}

const void *xp_batch_data(struct xp_batch *b)
{
    return b->records;
}

void xp_batch_free(struct xp_batch *b)
{
    if (!b)
        return;
    ring_buffer__free(b->rb);
    free(b);
}
"""


def _linking() -> dict:
    """How the extension gets libbpf: the system's shared library (a local
    build, ``make install``), or, for the wheel, the archives build/vendor.sh
    made (XCTL_PROBE_VENDOR names its prefix): libbpf and zlib linked in,
    libelf left shared for auditwheel to bundle, and nothing exported but
    the module's init function. A prefix built for another architecture
    also holds that architecture's Python headers, which go ahead of the
    build interpreter's own (its pyconfig.h describes this machine)."""
    vendor = os.environ.get("XCTL_PROBE_VENDOR")
    if not vendor:
        return {"libraries": ["bpf"], "include_dirs": [], "extra_objects": [],
                "library_dirs": [], "extra_link_args": []}
    prefix = Path(vendor)
    python_headers = prefix / "include" / f"python{sysconfig.get_python_version()}"
    return {
        "libraries": ["elf"],
        "include_dirs": [str(prefix / "include"),
                         *([str(python_headers)] if python_headers.is_dir() else [])],
        "extra_objects": [str(prefix / "lib" / "libbpf.a"), str(prefix / "lib" / "libz.a")],
        "library_dirs": [str(prefix / "lib")],
        "extra_link_args": [f"-Wl,--version-script={ROOT / 'build' / 'exports.map'}"],
    }


LINKING = _linking()
ffi = cffi.FFI()
ffi.cdef(KERNEL_TYPES + RECORD_H.read_text() + LIBBPF_CDEF)
ffi.set_source(
    "xctl_probe._libbpf",
    C_SOURCE,
    libraries=LINKING["libraries"],
    include_dirs=[*LINKING["include_dirs"], str(RECORD_H.parent)],
    library_dirs=LINKING["library_dirs"],
    extra_objects=LINKING["extra_objects"],
    extra_compile_args=["-O2", "-Wall"],
    extra_link_args=LINKING["extra_link_args"],
    py_limited_api=True,
)
