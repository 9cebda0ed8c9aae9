"""Operations for the double and the same events for `failsafectl test`: a seeded generator
of paths as the sensor sees them (four volumes, streams, case, short and GUID opened names),
renames, links, deletes and process filters; a generated rule set of a few thousand rules
(TOML for `failsafectl compile`); and the mapping from the CLI's verdict to what the driver
must answer. HOSTED under Wine with a test double of Filter Manager, not Windows."""

import json
import random
import struct

import proto

# The double's default volumes (src/volumes.rs DEFAULTS) and what the driver learns of them.
VOLUMES = {
    0: (r"\Device\HarddiskVolume3", "C:"),
    1: (r"\Device\HarddiskVolume5", "D:"),
    2: (r"\Device\HarddiskVolume7", None),            # no DOS name: a GUID name, given up
    3: (r"\Device\HarddiskVolume9", r"C:\mnt\data"),  # mounted in a folder
}
FAT, MUP = 4, 5
# --volume arguments for `failsafectl test` once the driver has learnt the DOS names.
CLI_VOLUMES = [f"--volume={dev}={dos}" for dev, dos in VOLUMES.values() if dos]

DIRS = [r"\Users\bob\Documents", r"\Users\bob\AppData\Local\Temp", r"\Windows\System32\drivers",
        r"\Windows\System32\drivers\etc", r"\Program Files\Contoso", r"\Windows", r"\Windows\Failsafe",
        r"\Users\alice\Desktop", r"\ProgramData\Updates", r"\Windows\System32"]
NAMES = ["report", "q3", "invoice", "setup", "notes", "payload", "update", "lsass", "svc", "data"]
EXTS = ["txt", "docx", "xlsx", "exe", "dll", "sys", "locky", "wncry", "ps1", "dmp", "html", "crypt",
        "hta", "ryk", "bin", "dat"]
SPECIAL = [r"\Windows\System32\drivers\etc\hosts", r"\Windows\bootstat.dat", r"\Users\bob\lsass_1.dmp",
           r"\Users\bob\Documents\DECRYPT_FILES.txt", r"\Users\bob\Documents\HOW_TO_RECOVER_FILES.html",
           r"\Users\bob\AppData\Local\Temp\dropper.exe", r"\Windows\Failsafe\state.bin"]
ACCESS = [0x120089, 0x2, 0x40000, 0x10000, 0x116, 0x12019F, 0x4, 0x100]
# Processes the double announces to the driver's notify routine (pid -> image as the kernel
# reports it), and pids it never announces (their image is unknown to the driver).
PROCESSES = {
    2000: r"\??\C:\Program Files\Veeam\Backup\Veeam.Backup.Manager.exe",
    2004: r"\??\C:\Windows\System32\wbengine.exe",
    2008: r"\Device\HarddiskVolume3\Windows\System32\TiWorker.exe",
    2012: r"\??\C:\Users\bob\Downloads\evil.exe",
    2016: r"\??\C:\Program Files\Failsafe\failsafe-updater.exe",
    2020: r"\Device\HarddiskVolume5\Tools\backup.exe",
    2024: r"\??\C:\Windows\System32\TrustedInstaller.exe",
}
UNKNOWN_PIDS = [1000, 1004, 3000]


def flip_case(rnd, s):
    return "".join(c.upper() if rnd.random() < 0.5 else c.lower() for c in s)


def indicator_rel(rnd, indicators):
    """A path that the generated rule for a random indicator k (generated_toml, kind k % 10)
    is about, or one of the anchored rules' paths."""
    k = rnd.randrange(indicators)
    u = f"ind{k:05d}"
    pattern = {
        0: f"\\Users\\bob\\{u}.exe", 1: f"\\Windows\\{u}.dll", 2: f"\\Data\\{u}.txt",
        3: f"\\Users\\bob\\{u}\\x.txt", 4: f"\\Temp\\{u}77.ps1", 5: f"\\Data\\{u}\\f.txt",
        6: f"\\Users\\{u}\\a.txt", 7: f"\\Data\\f.{u}", 8: f"\\Data\\{u}.dat", 9: f"\\Data\\{u}.exe",
    }[k % 10]
    return rnd.choice([pattern] * 4 + [r"\Windows\System32\drivers\new.sys", r"\Tools\agent.exe"])


def make_ops(seed: int, n: int, with_processes=True, indicators=0):
    """`n` operations on the four attached volumes; each carries the event the CLI gets
    (`tag["event"]`, paths in the device form the double names them, stream removed, as
    the driver reports them: docs/content-format.md, "Paths")."""
    rnd = random.Random(seed)
    out = []
    for i in range(n):
        vol = rnd.choice([0, 0, 0, 1, 2, 3])
        dev, _dos = VOLUMES[vol]
        if indicators and rnd.random() < 0.35:
            rel = indicator_rel(rnd, indicators)
        elif rnd.random() < 0.15:
            rel = rnd.choice(SPECIAL)
        else:
            rel = f"{rnd.choice(DIRS)}\\{rnd.choice(NAMES)}{rnd.randrange(100)}.{rnd.choice(EXTS)}"
        if rnd.random() < 0.2:
            rel = flip_case(rnd, rel)
        stream = f":{rnd.choice(['payload', 'Zone.Identifier', 'x'])}" if rnd.random() < 0.08 else ""
        name = dev + rel
        opened = ""
        if rnd.random() < 0.05 and r"\Program Files" in rel:
            opened = dev + rel.replace(r"\Program Files", r"\PROGRA~1")  # short name opened
        elif rnd.random() < 0.05:
            opened = r"\??\Volume{0b1c5a4e-0000-0000-0000-100000000000}" + rel  # GUID opened name
        if with_processes and rnd.random() < 0.45:
            pid = rnd.choice(list(PROCESSES))
        else:
            pid = rnd.choice(UNKNOWN_PIDS)
        kernel = rnd.random() < 0.08
        if kernel and rnd.random() < 0.5:
            pid = 4
        ev = {"pid": pid, "kernel-mode": kernel, "path": name}
        process = PROCESSES.get(pid, "")
        if process:
            ev["process"] = process
        r = rnd.random()
        if r < 0.6:
            access = rnd.choice(ACCESS)
            disp = rnd.randrange(6)
            opts = rnd.choice([0, 0x40, 0x1, 0x20])  # non-directory, directory, synchronous
            op = proto.Op(proto.IRP_MJ_CREATE, vol, name + stream, pid=pid, desired_access=access,
                          create_options=(disp << 24) | opts, requestor_mode=0 if kernel else 1,
                          opened=(opened + stream) if opened else "")
            ev.update({"event": "file-create", "desired-access": access, "disposition": disp,
                       "create-options": opts, "is-directory": bool(opts & 1)})
        else:
            kind = rnd.choice(["rename", "rename", "rename-ex", "link", "link-ex", "delete", "delete",
                               "delete-ex", "delete-ex-keep"])
            ev["event"] = "file-set-info"
            op = proto.Op(proto.IRP_MJ_SET_INFORMATION, vol, name + stream, pid=pid,
                          requestor_mode=0 if kernel else 1, opened=(opened + stream) if opened else "")
            if kind.startswith(("rename", "link")):
                tvol = vol if rnd.random() < 0.9 else rnd.choice([0, 1, 2, 3])
                tdev, tdos = VOLUMES[tvol]
                trel = f"{rnd.choice(DIRS)}\\{rnd.choice(NAMES)}.{rnd.choice(EXTS)}"
                if rnd.random() < 0.2:
                    trel += rnd.choice([".locky", ".wncry", ".crypt"])
                elif indicators and rnd.random() < 0.3:
                    trel += f".ind{rnd.randrange(indicators):05d}"
                dest = tdev + trel
                caller_name = (f"\\??\\{tdos}{trel}" if tdos else dest)
                op.info_class = {"rename": 10, "rename-ex": 65, "link": 11, "link-ex": 72}[kind]
                op.buffer = proto.rename_buffer(caller_name, replace=rnd.random() < 0.5)
                op.dest = dest
                ev.update({"info-class": op.info_class, "target-path": dest, "is-delete": False})
            elif kind == "delete":
                flag = rnd.choice([0, 1, 1, 0x80])  # BOOLEAN: any non-zero byte deletes
                op.info_class = 13
                op.buffer = bytes([flag])
                ev.update({"info-class": 13, "is-delete": flag != 0})
            else:
                flags = 1 | rnd.choice([0, 2, 0x10]) if kind == "delete-ex" else rnd.choice([0, 2, 4])
                op.info_class = 64
                op.buffer = proto.disposition_ex_buffer(flags)
                ev.update({"info-class": 64, "is-delete": bool(flags & 1)})
        op.tag = {"event": ev, "i": i}
        out.append(op)
    return out


def process_records():
    return [proto.process_record(1, pid, image) for pid, image in PROCESSES.items()]


def expected_driver(cli_line, op):
    """What the driver must answer for an event the CLI judged: block completes the
    operation with STATUS_ACCESS_DENIED, except the System process's kernel-mode requests
    while the driver's own directory is unknown (it is, under Wine: docs/windows.md, the
    own-directory guard) — those are reported but passed; everything else passes with the
    file system's status."""
    verdict = cli_line["verdict"]
    if verdict == "block" and not (op.requestor_mode == 0 and op.pid == 4):
        return "block"
    return "pass"


def observed(res):
    # A block: completed in pre-create, or (an open decided after it ran, issue 19 section
    # 4) cancelled in post-create with FltCancelFileOpen and failed with the same status.
    if res.flags & (proto.COMPLETED | proto.CANCELLED) and res.io_status == proto.STATUS_ACCESS_DENIED:
        return "block"
    if res.flags & proto.COMPLETED:
        return f"completed {res.io_status:#x}"
    return "pass" if res.io_status == 0 else f"status {res.io_status:#x}"


def delete_of_create(ev):
    """The file-set-info delete event the driver also evaluates for a create that deletes
    (FILE_DELETE_ON_CLOSE 0x1000, or disposition FILE_SUPERSEDE 0), or None."""
    if ev.get("event") != "file-create" or not (ev.get("disposition") == 0 or ev.get("create-options", 0) & 0x1000):
        return None
    d = {k: ev[k] for k in ("path", "pid", "process", "kernel-mode") if k in ev}
    d.update({"event": "file-set-info", "info-class": 13, "target-path": "", "is-delete": True})
    return d


def cli_events_jsonl(ops):
    return "".join(json.dumps(o.tag["event"]) + "\n" for o in ops)


def engine_tsv(cli_lines):
    """The CLI's events (as the sensor evaluates them) for engine-cost."""
    rows = []
    for l in cli_lines:
        e = l["event"]
        if e["type"] == "file-create":
            rows.append("\t".join(["create", e["path"], "", e["process"], str(e["pid"]), str(e["desired-access"]),
                                   str((e["disposition"] << 24) | e["create-options"]), "0", "0",
                                   "1" if e["kernel-mode"] else "0"]))
        else:
            rows.append("\t".join(["setinfo", e["path"], e["target-path"], e["process"], str(e["pid"]), "0", "0",
                                   str(e["info-class"]), "1" if e["is-delete"] else "0",
                                   "1" if e["kernel-mode"] else "0"]))
    return "\n".join(rows) + "\n"


def generated_toml(version: int, n: int, seed: int, extra_rules=""):
    """A rule set of `n` generated rules in the shape of the sample's (blocks and audits on
    extensions, names, folders, processes, anchored `C:\\` and `D:\\` paths, the unlettered
    volume's device form, renames to ransomware extensions, deletes), then the sample-like
    fixed rules the scenarios need. Indicator names are unique per rule."""
    rnd = random.Random(seed)
    rules = [f"version = {version}\n"]

    def rule(rid, event, action, match, exc=None):
        body = f'\n[[rule]]\nid = {rid}\nevent = "{event}"\naction = "{action}"\nmatch = [\n'
        for m in match:
            body += "  " + m + ",\n"
        body += "]\n"
        if exc:
            body += "except = [\n" + "".join(f"  [{e}],\n" for e in exc) + "]\n"
        return body

    def s(v):
        return json.dumps(v)

    rules.append(extra_rules)
    rules.append(rule(1, "file-create", "block",
                      ['{ field = "path", op = "wildcard", value = ' + s(r"C:\Windows\System32\drivers\*.sys") + ' }',
                       '{ field = "desired-access", op = "any-bits", value = 0x40116 }'],
                      ['{ field = "process", op = "ends-with", value = ' + s(r"\TrustedInstaller.exe") + ' }']))
    rules.append(rule(2, "file-create", "block",
                      ['{ field = "path", op = "starts-with", value = ' + s("D:\\Tools\\") + ' }',
                       '{ field = "extension", op = "equals", value = ["exe", "dll"] }']))
    rules.append(rule(3, "file-create", "audit",
                      ['{ field = "path", op = "starts-with", value = ' + s("\\Device\\HarddiskVolume7\\Windows\\") + ' }',
                       '{ field = "extension", op = "equals", value = "sys" }']))
    rules.append(rule(4, "file-create", "block",
                      ['{ field = "path", op = "starts-with", value = ' + s("C:\\mnt\\data\\Windows\\") + ' }',
                       '{ field = "extension", op = "equals", value = "sys" }']))
    for k in range(n):
        rid = 1000 + k
        kind = k % 10
        uniq = f"ind{k:05d}"
        if kind == 0:
            rules.append(rule(rid, "file-create", rnd.choice(["block", "audit"]),
                              ['{ field = "name", op = "equals", value = ' + s(f"{uniq}.exe") + ' }']))
        elif kind == 1:
            rules.append(rule(rid, "file-create", "audit",
                              ['{ field = "path", op = "ends-with", value = [' + s(f"\\{uniq}.dll") + ", " + s(f"\\{uniq}.sys") + '] }']))
        elif kind == 2:
            rules.append(rule(rid, "file-set-info", "block",
                              ['{ field = "target-path", op = "ends-with", value = ' + s(f".{uniq}") + ' }'],
                              ['{ field = "process", op = "ends-with", value = ' + s(r"\wbengine.exe") + ' }']))
        elif kind == 3:
            rules.append(rule(rid, "file-create", "audit",
                              ['{ field = "parent", op = "contains", value = ' + s(f"\\{uniq}\\") + ' }']))
        elif kind == 4:
            rules.append(rule(rid, "file-create", "block",
                              ['{ field = "name", op = "wildcard", value = ' + s(f"{uniq}*.ps1") + ' }',
                               '{ field = "process", op = "ends-with", value = ' + s(r"\evil.exe") + ' }']))
        elif kind == 5:
            rules.append(rule(rid, "file-set-info", "audit",
                              ['{ field = "path", op = "contains", value = ' + s(f"\\{uniq}") + ' }',
                               '{ field = "is-delete", op = "is-true" }']))
        elif kind == 6:
            rules.append(rule(rid, "file-create", "block",
                              ['{ field = "path", op = "starts-with", value = ' + s(f"C:\\Users\\{uniq}\\") + ' }']))
        elif kind == 7:
            rules.append(rule(rid, "file-create", "audit",
                              ['{ field = "extension", op = "equals", value = ' + s(uniq) + ' }',
                               '{ field = "desired-access", op = "any-bits", value = 0x2 }']))
        elif kind == 8:
            rules.append(rule(rid, "file-set-info", "block",
                              ['{ field = "name", op = "equals", value = ' + s(f"{uniq}.dat") + ' }',
                               '{ field = "kernel-mode", op = "is-false" }']))
        else:
            rules.append(rule(rid, "file-create", "allow",
                              ['{ field = "process", op = "ends-with", value = ' + s(f"\\{uniq}.exe") + ' }']))
    # The sample's rules last (the generated indicators never occur in the generated
    # events' names, except those the parity events aim at: see make_ops).
    return "".join(rules)
