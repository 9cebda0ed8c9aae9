"""The Filter Manager double's protocol, encoded and decoded in Python from
docs/windows.md ("The double's protocol"), independently of the Rust code
(driver/hosted/double/src/proto.rs). HOSTED under Wine with a test double of Filter
Manager, not Windows."""

import struct
from dataclasses import dataclass, field

IOCTL = 0x00222740
KIND_OPS, KIND_VOLUME, KIND_PROCESS, KIND_REPORT, KIND_SHUTDOWN = 1, 2, 3, 4, 5
OP_FIXED, RESULT_SIZE, VOLUME_FIXED, PROCESS_FIXED = 64, 56, 32, 8
MAX_MESSAGE = 256 * 1024

# Operation flags.
DRAIN, OPEN_BY_ID_RESOLVES, PAGING_IO, FAST_IO, NO_SECURITY_CONTEXT = 1, 2, 4, 8, 16
# Result flags.
COMPLETED, CANCELLED, DRAINED, UNFILTERED, MALFORMED = 1, 2, 4, 8, 16
# Volume actions.
ATTACH, DETACH, DISMOUNT, DEFINE, CONFIGURE = 1, 2, 3, 4, 5

IRP_MJ_CREATE, IRP_MJ_SET_INFORMATION = 0, 6
STATUS_SUCCESS = 0
STATUS_ACCESS_DENIED = 0xC0000022
STATUS_INVALID_PARAMETER = 0xC000000D
STATUS_INSUFFICIENT_RESOURCES = 0xC000009A
STATUS_FLT_INVALID_NAME_REQUEST = 0xC01C0005
STATUS_OBJECT_NAME_NOT_FOUND = 0xC0000034
STATUS_BUFFER_TOO_SMALL = 0xC0000023
FLT_PREOP = {0: "SUCCESS_WITH_CALLBACK", 1: "SUCCESS_NO_CALLBACK", 2: "PENDING", 3: "DISALLOW_FASTIO",
             4: "COMPLETE", 5: "SYNCHRONIZE", 6: "DISALLOW_FSFILTER_IO", -1: "-"}

VIOLATIONS = {
    1: "registration", 2: "pre-operation status", 3: "COMPLETE with STATUS_PENDING",
    4: "callback asked, no post callback", 5: "completion context with a status that takes none",
    6: "post-operation status", 7: "name release/reference unknown", 8: "name leaked by an operation",
    9: "name options", 10: "callback data not a live operation's", 11: "push lock uninitialized",
    12: "push lock released, not held", 13: "push lock deleted while held", 14: "push lock initialized twice",
    15: "FltCancelFileOpen outside post-create", 16: "success left after FltCancelFileOpen",
    17: "FltGetTunneledName outside post", 18: "disk device reference underflow",
    19: "object reference underflow", 20: "something left at unload", 21: "filter handle",
    22: "unknown volume/instance", 23: "destination name outside the buffer",
    24: "notify routine removed, not registered", 25: "instance reference held at teardown",
    26: "not implemented by the double", 27: "name query after the operation",
    28: "push lock acquired recursively",
}
LEFTOVERS = {1: "filter registered", 2: "instances", 4: "name information", 8: "push locks",
             16: "disk references", 32: "DOS-name buffers", 64: "process notify routine",
             128: "shutdown notification", 256: "device objects", 512: "object references"}


def u32(v):
    return v & 0xFFFFFFFF


def s32(v):
    v &= 0xFFFFFFFF
    return v - (1 << 32) if v & 0x80000000 else v


def wide(s: str) -> bytes:
    return s.encode("utf-16-le")


def pad8(b: bytes) -> bytes:
    return b + b"\0" * (-len(b) % 8)


@dataclass
class Op:
    """One operation as the double runs it (see the protocol's field table)."""
    major: int
    volume: int
    name: str
    pid: int = 1000
    flags: int = 0
    desired_access: int = 0x120089  # FILE_GENERIC_READ
    create_options: int = 1 << 24   # FILE_OPEN
    operation_flags: int = 0
    requestor_mode: int = 1         # UserMode
    name_status: int = 0
    dest_status: int = 0
    fs_status: int = 0
    info_class: int = 0
    info_length: int = -1           # -1: the buffer's length
    hold_name_ms: int = 0
    fs_information: int = 1         # FILE_OPENED
    opened: str = ""
    dest: str = ""
    tunnel: str = ""
    buffer: bytes = b""
    tag: dict = field(default_factory=dict)  # the runner's own notes (expected verdict...)

    def encode(self) -> bytes:
        n, o, d, t = wide(self.name), wide(self.opened), wide(self.dest), wide(self.tunnel)
        length = len(self.buffer) if self.info_length < 0 else self.info_length
        body = n + o + d + t + self.buffer
        size = OP_FIXED + len(body)
        size += -size % 8
        fixed = struct.pack(
            "<HBBIIIIBBHIIIIIHHHHHHII",
            size, self.major, self.volume, self.pid, self.flags, self.desired_access, self.create_options,
            self.operation_flags, self.requestor_mode, 0, u32(self.name_status), u32(self.dest_status),
            u32(self.fs_status), self.info_class, length, len(n) // 2, len(o) // 2, len(d) // 2,
            len(t) // 2, len(self.buffer), self.hold_name_ms, self.fs_information, 0)
        assert len(fixed) == OP_FIXED, len(fixed)
        return pad8(fixed + body)


def request(kind: int, worker: int, count: int, body: bytes = b"") -> bytes:
    return struct.pack("<4sHHII", b"FDQ1", kind, worker, count, 0) + body


def ops_request(worker: int, ops) -> bytes:
    return request(KIND_OPS, worker, len(ops), b"".join(o.encode() for o in ops))


def volume_command(action, volume, altitude=0, fs_type=0, device_type=0, dos_failures=0, flags=0,
                   dos_kind=0xFF, name="", dos=""):
    n, d = wide(name), wide(dos)
    fixed = struct.pack("<BBHIIIIIIHH", action, volume, len(n) // 2, altitude, fs_type, device_type,
                        dos_failures, flags, dos_kind, len(d) // 2, 0)
    assert len(fixed) == VOLUME_FIXED
    return pad8(fixed + n + d)


def volume_request(commands) -> bytes:
    return request(KIND_VOLUME, 0, len(commands), b"".join(commands))


def process_record(action, pid, image=""):
    img = wide(image)
    return pad8(struct.pack("<BBHI", action, 0, len(img) // 2, pid) + img)


def process_request(records) -> bytes:
    return request(KIND_PROCESS, 0, len(records), b"".join(records))


def response(raw: bytes):
    if len(raw) < 16:
        raise ValueError(f"response of {len(raw)} bytes (header is 16)")
    magic, kind, res, status, body_len = struct.unpack_from("<4sHHiI", raw)
    if magic != b"FDR1" or res != 0 or len(raw) != 16 + body_len:
        raise ValueError(f"response header {raw[:16].hex()} (length {len(raw)})")
    return kind, status, raw[16:]


@dataclass
class Result:
    index: int
    pre_called: int
    post_called: int
    flags: int
    pre_status: tuple
    post_status: tuple
    io_status: int
    names_acquired: int
    names_leaked: int
    violations: int
    pre_ticks: int
    information: int


def results(body: bytes):
    if len(body) % RESULT_SIZE:
        raise ValueError(f"results body of {len(body)} bytes")
    out = []
    for at in range(0, len(body), RESULT_SIZE):
        (index, pre_called, post_called, flags, _r, p0, p1, q0, q1, io, acq, leak, viol,
         ticks, info) = struct.unpack_from("<IBBBBiiiiIIIIQQ", body, at)
        out.append(Result(index, pre_called, post_called, flags, (p0, p1), (q0, q1), io, acq, leak, viol, ticks, info))
    return out


def report(body: bytes):
    f = struct.unpack_from("<IIIIIIiIIIQQQQQQIiIIII", body, 0)
    keys = ["version", "violations", "filter_state", "instances", "names_live", "pushlocks_live",
            "disk_refs", "dos_buffers", "notify_registered", "shutdown_registered", "ops", "pre_calls",
            "post_calls", "name_queries", "names_handed_out", "tsc_per_ms", "unloads", "last_unload_status",
            "last_leftovers", "registrations", "patched", "records"]
    r = dict(zip(keys, f))
    at = struct.calcsize("<IIIIIIiIIIQQQQQQIiIIII")
    r["volumes"] = []
    for _ in range(8):
        dos, name, disk, inst = struct.unpack_from("<IIiI", body, at)
        r["volumes"].append({"dos_calls": dos, "name_calls": name, "disk_refs": disk, "instances": inst})
        at += 16
    r["instances_table"] = []
    for _ in range(16):
        st, vol, alt, refs = struct.unpack_from("<IIIi", body, at)
        r["instances_table"].append({"state": st, "volume": vol, "altitude": alt, "refs": refs})
        at += 16
    r["violation_records"] = []
    for _ in range(r["records"]):
        code, seq, a, b, c = struct.unpack_from("<IIQQQ", body, at)
        r["violation_records"].append({"code": code, "what": VIOLATIONS.get(code, "?"), "seq": seq, "values": [a, b, c]})
        at += 32
    if at != len(body):
        raise ValueError(f"report: {len(body) - at} bytes after the last record")
    return r


def leftovers(bits):
    return [v for k, v in LEFTOVERS.items() if bits & k] or ["nothing"]


def rename_buffer(target: str, class_ex=False, replace=False, root=0, length_override=None) -> bytes:
    """FILE_RENAME_INFORMATION / FILE_LINK_INFORMATION as a caller passes it (ntifs.h: a
    BOOLEAN or ULONG Flags at 0, RootDirectory at 8, FileNameLength at 16, FileName at 20)."""
    name = wide(target)
    flags = (1 if replace else 0)
    head = struct.pack("<I4xQI", flags, root, len(name) if length_override is None else length_override)
    return head + name


def disposition_buffer(delete: bool) -> bytes:
    return bytes([1 if delete else 0])


def disposition_ex_buffer(flags: int) -> bytes:
    return struct.pack("<I", flags)
