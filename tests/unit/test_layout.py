"""One definition of the record layout: bpf/record.h. The BPF object (built
by clang for the BPF target) and the Python decoder (cffi, host compiler)
both take it from there; these tests fail if the two ever disagree."""

from xctl_probe.kernel.binding import ffi
from xctl_probe.kernel.decoder import RECORD_FIELDS, RECORD_STRUCT, Record, record_at
from xctl_probe.kernel.objects import PROBE_OBJECT

from lab.btf import struct_layout


def python_layout():
    ctype = ffi.typeof("struct xp_record")
    return ffi.sizeof(ctype), [
        (name, field.offset, ffi.sizeof(field.type)) for name, field in ctype.fields
    ]


def test_bpf_object_and_python_side_share_one_layout():
    btf_size, btf_members = struct_layout(PROBE_OBJECT, "xp_record")
    py_size, py_members = python_layout()
    assert btf_members == py_members
    assert btf_size == py_size == RECORD_STRUCT.size
    assert [name for name, _ in RECORD_FIELDS] == [name for name, _, _ in btf_members]


def test_layout_has_no_hidden_padding():
    size, members = python_layout()
    end = 0
    for name, offset, width in members:
        assert offset == end, f"padding before {name}"
        end = offset + width
    assert end == size


def test_decoder_reads_back_what_c_wrote():
    record = ffi.new("struct xp_record *")
    expected = {}
    for i, (name, field) in enumerate(ffi.typeof("struct xp_record").fields):
        if field.type.kind == "array":
            value = bytes((i * 7 + j) & 0xFF for j in range(field.type.length))
            ffi.memmove(getattr(record, name), value, len(value))
        else:
            # A distinct value in every byte of the field, so any shift shows.
            width = ffi.sizeof(field.type)
            value = int.from_bytes(bytes(range(i * 8 + 1, i * 8 + 1 + width)), "little",
                                   signed=field.type.cname.startswith("int"))
            setattr(record, name, value)
        expected[name] = value
    decoded = Record(*RECORD_STRUCT.unpack(bytes(ffi.buffer(record))))
    assert {name: getattr(decoded, name) for name in expected} == expected


def test_a_record_is_read_at_its_place_in_a_batch():
    records = ffi.new("struct xp_record[3]")
    for i in range(3):
        records[i].skb_segs = i + 1
    raw = bytes(ffi.buffer(records))
    assert [record_at(raw, i).skb_segs for i in range(3)] == [1, 2, 3]
