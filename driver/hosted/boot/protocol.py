"""The control device's protocol (docs/control-protocol.md): requests encoded, responses
decoded and checked. Also used by the Filter Manager double (double/run.py, wine.py)."""

import struct

from .common import Fail

# Written from docs/control-protocol.md alone (not from the Rust code), so the hosted
# scenario is also an independent check of the driver's encoder.

PROTOCOL = 2
KIND_QUERY, KIND_ACTIVATE, KIND_ROLLBACK, KIND_EVENTS = 1, 2, 3, 4
KIND_FORCE_SAFE, KIND_RESET, KIND_UNQUARANTINE, KIND_UNQUARANTINE_YES = 5, 6, 7, 8
CHANGED_KINDS = (KIND_ACTIVATE, KIND_ROLLBACK, KIND_FORCE_SAFE, KIND_RESET, KIND_UNQUARANTINE,
                 KIND_UNQUARANTINE_YES)
FLAG_LIVE, FLAG_HEALTHY, FLAG_CHECKED, FLAG_CANARY_FAILED = 1, 2, 8, 16


def control_request(kind, arg=0):
    return b"FSCQ" + struct.pack("<HHQ", PROTOCOL, kind, arg)


def control_response(raw: bytes):
    """Decodes a response; raises Fail on anything the document does not allow."""
    if len(raw) < 16:
        raise Fail(f"control response of {len(raw)} bytes (header is 16)")
    magic, proto, kind, status, reserved, body_len = struct.unpack_from("<4sHHHHI", raw)
    if magic != b"FSCR" or proto != PROTOCOL or reserved != 0 or len(raw) != 16 + body_len:
        raise Fail(f"control response header: {raw[:16].hex()} (length {len(raw)})")
    body = raw[16:]
    if status != 0:
        n, res = struct.unpack_from("<HH", body)
        if n > 240 or 4 + n != len(body) or res != 0:
            raise Fail(f"control refusal body: {body.hex()}")
        return {"kind": kind, "status": status, "message": body[4:].decode("utf-8")}
    if kind == KIND_QUERY:
        if len(body) != 64:
            raise Fail(f"status body of {len(body)} bytes (64)")
        (active, boot, lkg, active_ms, dropped, queued, uptime, mode, reason, attempts, flags,
         res, canary) = struct.unpack("<QQQQQIIBBBBIq", body)
        if flags & ~31 or res:
            raise Fail(f"status flags {flags:#x} / reserved {res}")
        return {"kind": kind, "status": 0, "active": active, "boot": boot, "lkg": lkg,
                "active_ms": active_ms, "dropped": dropped, "queued": queued, "uptime": uptime,
                "mode": mode, "reason": reason, "attempts": attempts, "flags": flags, "canary": canary}
    if kind in CHANGED_KINDS:
        if len(body) != 16:
            raise Fail(f"changed body of {len(body)} bytes (16)")
        version, boot = struct.unpack("<QQ", body)
        return {"kind": kind, "status": 0, "version": version, "boot": boot}
    if kind == KIND_EVENTS:
        dropped, first, count, res, res2 = struct.unpack_from("<QQHHI", body)
        if res or res2:
            raise Fail(f"events body reserved bytes: {body[:24].hex()}")
        at, events = 24, []
        for _ in range(count):
            action, etype, flags, res2, rule, pid, plen, qlen = struct.unpack_from("<BBBBIQHH", body, at)
            at += 20
            path = body[at:at + 2 * plen].decode("utf-16-le")
            at += 2 * plen
            proc = body[at:at + 2 * qlen].decode("utf-16-le")
            at += 2 * qlen
            events.append({"action": action, "event": etype, "flags": flags, "rule": rule, "pid": pid,
                           "path": path, "process": proc})
        if at != len(body):
            raise Fail(f"events body: {len(body) - at} bytes after the last record")
        return {"kind": kind, "status": 0, "dropped": dropped, "first": first, "events": events}
    raise Fail(f"control response of kind {kind}")
