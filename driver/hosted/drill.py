#!/usr/bin/env python3
"""Hosted drill: the real failsafeflt.sys (drill build) through a crash loop under Wine.

HOSTED, NOT WINDOWS. Wine's ntoskrnl.exe / fltmgr.sys / winedevice.exe execute the driver
image that `driver/kcheck/run.sh` links: DriverEntry, the kernel medium (ZwCreateFile /
ZwWriteFile / ZwFlushBuffersFile on state.bin), the registry reads, InitSafeBootMode, the
health timer -> DPC -> work item -> canary, and the drill build's KeBugCheckEx. Wine is used
as it is: nothing here stubs, patches or replaces any of its functions.

One boot = one Wine session: the runner keeps one ordinary Wine process alive (a session
lasts only while one runs) and reads the session's debug output through it; the service is
registered with Start = 1 (SERVICE_SYSTEM_START, as the INF), so Wine's services.exe starts
it when the session starts. A boot ends in one of these ways:
  healthy   the driver's own health timer fires, its work item runs the canary and records
            healthy (seen in the record), then the session is ended (`wineserver -k`)
  bugcheck  the drill build's KeBugCheckEx ends the host process (winedevice.exe)
  kill      SIGKILL to the host process right after the start line (printed after the
            attempt is durable): power loss
  shutdown  the session is ended in order (the keep-alive exits, `wineserver -w`). Wine 8.0
            delivers no IRP_MJ_SHUTDOWN (IoRegisterShutdownNotification is a stub) and cannot
            unload the filter (its FltRegisterFilter is a stub that never wires
            FilterUnloadCallback, so DriverUnload stays NULL): the driver sees nothing.
After every boot `failsafectl status --json` reads the record the kernel medium wrote.

Checks (the run fails on any difference that is not the declared host gap):
  1. the hosted timeline against `failsafectl drill 1 --json` (scenario 1);
  2. for every boot, the driver's decision against `failsafectl boot` run on a copy of the
     same store just before that boot (the same record, the CLI's start sequence), and the
     driver's LastStart registry value (REG_BINARY, written by ZwSetValueKey) against the
     start report that CLI boot wrote, byte for byte;
  3. after every boot, the driver's registry mirror of the record (Parameters\State, read
     with `wine reg query` during the session) equal to `failsafectl status --json`'s
     registry_mirror.expected (computed from the record the driver wrote), value by value;
     and what Wine does with the ETW provider: no Etw* routine exported (Wine says so to
     MmGetSystemRoutineAddress), the driver's line that it runs without the provider, and
     no call of any Etw* routine.
"""

import argparse
import json
import os
import re
import shutil
import signal
import struct
import subprocess
import sys
import threading
import time
from pathlib import Path

SERVICE = "failsafeflt"
SERVICE_KEY = r"HKLM\System\CurrentControlSet\Services\failsafeflt"
PARAMS_KEY = SERVICE_KEY + r"\Parameters"
STATE_KEY = PARAMS_KEY + r"\State"
ETW_NOT_REGISTERED = re.compile(r"failsafeflt: ETW provider (not registered: [^\n]*|registered [^\n]*)")
CONTENT_DIR_NT = r"\??\C:\windows\Failsafe"  # \SystemRoot\... does not resolve in Wine 8.0
HEALTHY_AFTER = 10
THRESHOLD = 3
DRILL_VERSION = 2
START_LINE = re.compile(r"failsafeflt: start: InitSafeBootMode=(\d+), content (\S+) (\d+)")
BUGCHECK = re.compile(r"err:ntoskrnl:KeBugCheckEx (\S+) (\S+)")
RELAY = re.compile(
    r"^([0-9a-f]+):(Call|Ret) +(ntoskrnl\.exe|fltmgr\.sys|hal\.dll)\.(\w+)\((.*?)\)"
    r"(?: retval=([0-9a-f]+))? ret=([0-9a-f]+)$"
)
# Faults, leaks and aborts the host reports (none is expected in any boot).
FAULT = re.compile(r"Unhandled exception|page fault|unimplemented function|err:seh:|err:virtual:"
                   r"|err:heap:|leak|Unhandled page fault|EXCEPTION_")
DRIVER_INIT = re.compile(r":Call driver init ([0-9a-f]+) \(.*Services\\\\failsafeflt")


# ---------------------------------------------------------------- the control protocol
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


def say(msg):
    print(msg, flush=True)


class Fail(Exception):
    pass


# ---------------------------------------------------------------- the image and its map


def pe_entry_rva(image: Path) -> int:
    data = image.read_bytes()
    pe = struct.unpack_from("<I", data, 0x3C)[0]
    return struct.unpack_from("<I", data, pe + 24 + 16)[0]  # AddressOfEntryPoint


def pe_image_size(image: Path) -> int:
    data = image.read_bytes()
    pe = struct.unpack_from("<I", data, 0x3C)[0]
    return struct.unpack_from("<I", data, pe + 24 + 56)[0]  # SizeOfImage (PE32+)


def demangle(sym: str) -> str:
    """Rust's legacy `_ZN...E` names, enough for a table (hash dropped)."""
    if not sym.startswith("_ZN"):
        return sym
    s, i, parts = sym[3:], 0, []
    while i < len(s) and s[i].isdigit():
        j = i
        while s[j].isdigit():
            j += 1
        n = int(s[i:j])
        parts.append(s[j : j + n])
        i = j + n
    if parts and re.fullmatch(r"h[0-9a-f]{16}", parts[-1]):
        parts.pop()
    out = "::".join(parts)
    for a, b in (("$LT$", "<"), ("$GT$", ">"), ("$u20$", " "), ("$C$", ","), ("..", "::")):
        out = out.replace(a, b)
    return out


def build_identity(image: Path) -> str:
    """The build identity the image carries (driver/src/build_id.rs: `FSBUILD1`, version
    u64, digest), as `failsafectl boot --build` takes it."""
    data = image.read_bytes()
    at = data.find(b"FSBUILD1")
    if at < 0 or data.find(b"FSBUILD1", at + 1) >= 0:
        raise Fail(f"{image}: no single FSBUILD1 marker")
    version, digest = struct.unpack_from("<Q", data, at + 8)[0], data[at + 16:at + 48]
    return f"{version >> 32}.{(version >> 16) & 0xFFFF}.{version & 0xFFFF}+{digest.hex()}"


def read_map(path: Path):
    """(address, name) of every code symbol in lld-link's /MAP output, sorted."""
    syms = []
    for line in path.read_text(errors="replace").splitlines():
        m = re.match(r"^\s*0001:[0-9a-f]+\s+(\S+)\s+([0-9a-f]{16})\s", line)
        if m:
            syms.append((int(m.group(2), 16), demangle(m.group(1))))
    syms.sort()
    return syms


def owner(syms, addr):
    lo, hi, best = 0, len(syms), None
    while lo < hi:
        mid = (lo + hi) // 2
        if syms[mid][0] <= addr:
            best, lo = syms[mid], mid + 1
        else:
            hi = mid
    return best[1] if best else "?"


# ---------------------------------------------------------------- Wine


class Wine:
    def __init__(self, prefix: Path):
        self.prefix = prefix

    def env(self, debug="-all"):
        e = dict(os.environ)
        e.update(
            WINEPREFIX=str(self.prefix),
            WINEDEBUG=debug,
            WINEARCH="win64",
            WINEDLLOVERRIDES="mscoree,mshtml=",  # no Mono / Gecko installer prompts
            DISPLAY="",
        )
        return e

    def run(self, *args, check=True):
        r = subprocess.run(["wine", *args], env=self.env(), capture_output=True, text=True)
        if check and r.returncode != 0:
            raise Fail(f"wine {' '.join(args)}: exit {r.returncode}: {r.stdout}{r.stderr}")
        return r

    def kill(self):
        subprocess.run(["wineserver", "-k"], env=self.env(), capture_output=True)
        subprocess.run(["wineserver", "-w"], env=self.env(), capture_output=True)

    def wait_end(self, timeout=60):
        try:
            subprocess.run(["wineserver", "-w"], env=self.env(), capture_output=True, timeout=timeout)
        except subprocess.TimeoutExpired:
            raise Fail("the Wine session did not end")

    def reg_query_values(self, key):
        """Every REG_SZ / REG_DWORD value of `key` ({} when it does not exist)."""
        r = self.run("reg", "query", key, check=False)
        out = {}
        for line in r.stdout.splitlines():
            m = re.match(r"^\s+(\S+)\s+(REG_SZ|REG_DWORD)\s*(.*?)\s*$", line)
            if m:
                name, ty, data = m.groups()
                out[name] = int(data, 16) if ty == "REG_DWORD" else data
        return out

    def reg_query_binary(self, key, name):
        r = self.run("reg", "query", key, "/v", name, check=False)
        m = re.search(rf"{name}\s+REG_BINARY\s+([0-9A-Fa-f]*)", r.stdout)
        return bytes.fromhex(m.group(1)) if m else None


def host_pids_with_driver():
    """winedevice.exe processes that have failsafeflt.sys mapped."""
    pids = []
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            if "failsafeflt.sys" in (d / "maps").read_text(errors="replace"):
                pids.append(int(d.name))
        except OSError:
            pass
    return pids


class Session:
    """One Wine session = one boot. Keeps an ordinary process alive and collects the debug
    output of the whole session through its stderr (inherited by services.exe and
    winedevice.exe), keeping what concerns the driver."""

    def __init__(self, wine: Wine, log: Path, entry_rva: int, image_size: int):
        self.wine, self.lines, self.base = wine, [], None
        self.entry_rva, self.image_size = entry_rva, image_size
        self.log = log.open("w")
        self.cond = threading.Condition()
        self.proc = subprocess.Popen(
            ["wine", "cmd.exe", "/c", "set /p KEEPALIVE="],
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            env=wine.env("+debugstr,+ntoskrnl,+relay"),
        )
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _mine(self, ret: str) -> bool:
        return self.base is not None and 0 <= int(ret, 16) - self.base < self.image_size

    def _read(self):
        for raw in self.proc.stderr:
            line = raw.decode("utf-8", "replace").rstrip("\n")
            keep = False
            if ":Call " in line or ":Ret " in line:
                m = DRIVER_INIT.search(line)
                if m:
                    self.base = int(m.group(1), 16) - self.entry_rva
                    keep = True
                elif "driver init" in line and "failsafeflt" in line:
                    keep = True
                else:
                    r = RELAY.match(line)
                    keep = bool(r) and self._mine(r.group(7))
            elif ":trace:ntoskrnl:" in line:
                # Wine calling into the driver (timer DPC, work item), and what it did.
                keep = "failsafeflt" in line or any(
                    k in line
                    for k in ("DeferredRoutine", "run_work_item_worker", "unload_driver", "KeBugCheck")
                )
            elif re.match(r"^[0-9a-f]+:(err|fixme|warn):", line) or "failsafeflt" in line:
                keep = True  # err, fixme, warn (DbgPrint), and anything naming the driver
            if keep:
                self.log.write(line + "\n")
                with self.cond:
                    self.lines.append(line)
                    self.cond.notify_all()
        with self.cond:
            self.lines.append("<end of session output>")
            self.cond.notify_all()

    def wait_for(self, pattern, timeout):
        rx = re.compile(pattern)
        deadline = time.time() + timeout
        seen = 0
        with self.cond:
            while True:
                for line in self.lines[seen:]:
                    if rx.search(line):
                        return line
                seen = len(self.lines)
                left = deadline - time.time()
                if left <= 0 or (self.lines and self.lines[-1] == "<end of session output>"):
                    return None
                self.cond.wait(min(left, 0.5))

    def end_in_order(self):
        """The keep-alive exits; Wine ends the session (system processes are told to stop)."""
        if self.proc.stdin:
            self.proc.stdin.close()
        self.proc.wait(timeout=60)
        self.wine.wait_end()
        self.reader.join(timeout=30)
        self.log.close()

    def power_off(self):
        self.wine.kill()
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        self.reader.join(timeout=30)
        self.log.close()


# ---------------------------------------------------------------- failsafectl


class Ctl:
    def __init__(self, exe: Path):
        self.exe = exe

    def run(self, *args, ok=(0,)):
        r = subprocess.run([str(self.exe), *map(str, args)], capture_output=True, text=True)
        if r.returncode not in ok:
            raise Fail(f"failsafectl {' '.join(map(str, args))}: exit {r.returncode}: {r.stdout}{r.stderr}")
        return r.stdout

    def status(self, store: Path):
        return json.loads(self.run("status", "--store", store, "--json", "--threshold", THRESHOLD))

    def shadow_boot(self, store: Path, shadow: Path, force_safe_mode: bool, test_key: str, build: str,
                    extra=()):
        """The CLI's start sequence on a copy of the store as it is before the hosted boot, as
        the driver build `build` (the image's own identity)."""
        if shadow.exists():
            shutil.rmtree(shadow)
        shutil.copytree(store, shadow)
        for f in ("last-start.bin",):
            (shadow / f).unlink(missing_ok=True)
        args = ["boot", "--store", shadow, "--json", "--threshold", THRESHOLD, "--then", "clean-shutdown",
                "--test-signing", "--test-key", test_key, "--build", build, *extra]
        if force_safe_mode:
            args.append("--force-safe-mode")
        out = self.run(*args)
        decision = json.loads(out.splitlines()[0])
        report = (shadow / "last-start.bin").read_bytes() if (shadow / "last-start.bin").exists() else None
        return decision, report


# ---------------------------------------------------------------- the drill


def reg_file(force_safe_mode: int) -> str:
    """Everything but the two REG_EXPAND_SZ values (`reg add` writes those: Wine 8.0's
    `reg import` stores the hex(2) form of a .reg file as doubly encoded text)."""
    return f"""Windows Registry Editor Version 5.00

[HKEY_LOCAL_MACHINE\\System\\CurrentControlSet\\Services\\{SERVICE}]
"Type"=dword:00000002
"Start"=dword:00000004
"ErrorControl"=dword:00000001
"Group"="FSFilter Anti-Virus"
"DisplayName"="failsafeflt DRILL BUILD - HOSTED under Wine, not Windows"
"SupportedFeatures"=dword:00000003

[HKEY_LOCAL_MACHINE\\System\\CurrentControlSet\\Services\\{SERVICE}\\Parameters]
"SupportedFeatures"=dword:00000003
"Threshold"=dword:{THRESHOLD:08x}
"HealthyAfterSeconds"=dword:{HEALTHY_AFTER:08x}
"ForceSafeMode"=dword:{force_safe_mode:08x}
"DrillCrashVersion"=dword:{DRILL_VERSION:08x}
"DrillStoreAclReportOnly"=dword:00000001

[HKEY_LOCAL_MACHINE\\System\\CurrentControlSet\\Services\\{SERVICE}\\Parameters\\Instances]
"DefaultInstance"="Failsafe Instance"

[HKEY_LOCAL_MACHINE\\System\\CurrentControlSet\\Services\\{SERVICE}\\Parameters\\Instances\\Failsafe Instance]
"Altitude"="328770"
"Flags"=dword:00000000
"""


class Drill:
    def __init__(self, args):
        self.work = Path(args.work).resolve()
        self.image = Path(args.sys).resolve()
        self.syms = read_map(Path(args.map))
        self.ctl = Ctl(Path(args.ctl).resolve())
        self.sample = Path(args.sample).resolve()
        self.prefix = self.work / "prefix"
        self.wine = Wine(self.prefix)
        self.store = self.prefix / "drive_c" / "windows" / "Failsafe"
        self.entry_rva = pe_entry_rva(self.image)
        self.image_size = pe_image_size(self.image)
        self._build = None
        self.boot_no = 0
        self.rows = []
        self.calls = {}  # (driver function, kernel routine) -> count
        self.notes = []
        self.unload_line = None

    @property
    def build(self):
        """The image's build identity, read when first needed (the reparse scenario needs none,
        and runs on images that predate the marker to show what they did)."""
        if self._build is None:
            self._build = build_identity(self.image)
        return self._build

    @build.setter
    def build(self, value):
        self._build = value

    # -- setup
    def setup(self):
        if self.work.exists():
            self.wine.kill() if self.prefix.exists() else None
            shutil.rmtree(self.work)
        self.work.mkdir(parents=True)
        say(f"hosted: fresh Wine prefix {self.prefix} ({subprocess.run(['wine', '--version'], capture_output=True, text=True).stdout.strip()})")
        r = subprocess.run(["wineboot", "-i"], env=self.wine.env(), capture_output=True, text=True)
        if r.returncode != 0:
            raise Fail(f"wineboot -i failed: {r.stderr}")
        self.wine.wait_end()
        drivers = self.prefix / "drive_c" / "windows" / "system32" / "drivers"
        shutil.copyfile(self.image, drivers / "failsafeflt.sys")
        # Content is signed (issue 13): a development key made for this run, trusted by the
        # driver as a test key — TestSigning=1, TestSigningKeys, and Windows' own boot
        # options saying TESTSIGNING (the prefix's registry, as `bcdedit /set testsigning
        # on` leaves it on Windows). The CLI's shadow boots trust the same key.
        self.key = self.work / "dev.key"
        k = json.loads(self.ctl.run("keygen", "-o", self.key, "--json"))
        self.public_hex = k["public_key"]
        for v in (1, 2):
            self.ctl.run("compile", self.sample, "-o", self.work / f"{v}.fsc", "--version", v,
                         "--sign", self.key)
        # The service, as the INF writes it (ServiceType 2, the Parameters values, the
        # Instances key), registered disabled first so that the session that writes it cannot
        # start it, then set to Start = 1 (SERVICE_SYSTEM_START, as the INF) in that session.
        reg = self.work / "failsafeflt.reg"
        reg.write_text(reg_file(0))
        # Crashes end the host process, not a debugger session.
        self.wine.run("reg", "add", r"HKLM\Software\Microsoft\Windows NT\CurrentVersion\AeDebug", "/v", "Debugger", "/d", "false", "/f")
        self.wine.run("reg", "import", str(reg))
        self.wine.run("reg", "add", SERVICE_KEY, "/v", "ImagePath", "/t", "REG_EXPAND_SZ",
                      "/d", r"\SystemRoot\System32\drivers\failsafeflt.sys", "/f")
        self.wine.run("reg", "add", PARAMS_KEY, "/v", "ContentDirectory", "/t", "REG_EXPAND_SZ",
                      "/d", CONTENT_DIR_NT, "/f")
        self.wine.run("reg", "add", PARAMS_KEY, "/v", "TestSigning", "/t", "REG_DWORD", "/d", "1", "/f")
        self.wine.run("reg", "add", PARAMS_KEY, "/v", "TestSigningKeys", "/t", "REG_BINARY",
                      "/d", self.public_hex, "/f")
        self.wine.run("reg", "add", r"HKLM\System\CurrentControlSet\Control", "/v", "SystemStartOptions",
                      "/t", "REG_SZ", "/d", " TESTSIGNING", "/f")
        self.wine.run("reg", "add", SERVICE_KEY, "/v", "Start", "/t", "REG_DWORD", "/d", "1", "/f")
        self.wine.wait_end()
        if self.store.exists():
            raise Fail("the setup session started the driver (a store exists before boot 1)")
        say(f"hosted: {SERVICE} registered (Type 2, Start 1, Threshold {THRESHOLD}, HealthyAfterSeconds {HEALTHY_AFTER}, "
            f"ContentDirectory {CONTENT_DIR_NT}, DrillCrashVersion {DRILL_VERSION}); image {self.image.name}")

    def stage(self, v, init=False):
        args = ["stage", self.work / f"{v}.fsc", "--store", self.store, "--json", "--threshold", THRESHOLD]
        if init:
            args.append("--init")
        self.ctl.run(*args)
        self.rows.append({"event": "staged", "version": v})
        say(f"  -- update channel drops v{v} (failsafectl stage into {self.store})")

    # -- one boot
    def boot(self, end, force_safe_mode=False, set_next=None, unload=False, during=None):
        self.boot_no += 1
        n = self.boot_no
        before = self.ctl.status(self.store) if (self.store / "state.bin").exists() else None
        shadow, shadow_report = self.ctl.shadow_boot(self.store, self.work / "shadow", force_safe_mode, self.public_hex,
                                                     self.build)
        log = self.work / f"boot-{n}.log"
        s = Session(self.wine, log, self.entry_rva, self.image_size)
        start = s.wait_for(r"failsafeflt: (start|not started)", 90)
        if not start or "not started" in start:
            s.power_off()
            raise Fail(f"boot {n}: no start line from the driver (log: {log}): {start}")
        m = START_LINE.search(start)
        printed = {"InitSafeBootMode": int(m.group(1)), "content": m.group(2), "version": int(m.group(3))}
        evidence, outcome, snapshot = [], None, None
        if end == "bugcheck":
            bc = s.wait_for(r"err:ntoskrnl:KeBugCheckEx", 30)
            if not bc:
                s.power_off()
                raise Fail(f"boot {n}: expected the drill bugcheck, none came (log: {log})")
            deadline = time.time() + 15
            while host_pids_with_driver() and time.time() < deadline:
                time.sleep(0.2)
            if host_pids_with_driver():
                raise Fail(f"boot {n}: the host process survived KeBugCheckEx")
            evidence.append(bc.split(":", 1)[1] + "; host process exited")
            last_start = self.wine.reg_query_binary(PARAMS_KEY, "LastStart")
            mirror = self.check_mirror(n)
            s.power_off()
        elif end == "kill":
            pids = host_pids_with_driver()
            if len(pids) != 1:
                raise Fail(f"boot {n}: expected one host process with the driver, found {pids}")
            os.kill(pids[0], signal.SIGKILL)
            evidence.append(f"SIGKILL to winedevice.exe (pid {pids[0]}) after the start line")
            last_start = self.wine.reg_query_binary(PARAMS_KEY, "LastStart")
            mirror = self.check_mirror(n)
            s.power_off()
        elif end == "healthy":
            deadline = time.time() + HEALTHY_AFTER + 60
            while time.time() < deadline:
                st = self.ctl.status(self.store)["state"]
                hc = st.get("last_health_check") or {}
                if hc.get("boot") == n:
                    break
                time.sleep(0.5)
            last_start = self.wine.reg_query_binary(PARAMS_KEY, "LastStart")
            mirror = self.check_mirror(n)
            if during:
                # The start's decision as recorded before anything live changes it.
                snapshot = self.ctl.status(self.store)
                during(s)
            if set_next:
                self.set_params(set_next)
            if unload:
                # Unload while content is active: `net stop` (the SCM's stop, as `sc stop`).
                r = self.wine.run("net", "stop", SERVICE, check=False)
                line = s.wait_for(r"unload_driver driver .*failsafeflt", 30)
                mapped = bool(host_pids_with_driver())
                evidence.append(f"net stop with content active: exit {r.returncode} "
                                f"({r.stdout.strip().splitlines()[-1] if r.stdout.strip() else ''}); Wine: "
                                f"{line.split(':', 3)[-1] if line else 'no unload_driver line'}; image still "
                                f"mapped in winedevice.exe: {'yes' if mapped else 'no'}")
                self.unload_line = line
            s.power_off()
        elif end == "shutdown":
            last_start = self.wine.reg_query_binary(PARAMS_KEY, "LastStart")
            mirror = self.check_mirror(n)
            if set_next:
                self.set_params(set_next)
            s.end_in_order()
            evidence.append("session ended in order; the driver was sent nothing "
                            "(Wine: IoRegisterShutdownNotification stub, DriverUnload NULL)")
        else:
            raise ValueError(end)

        after = snapshot if during else self.ctl.status(self.store)
        st = after["state"]
        dec = st["last_decision"]
        if dec["boot"] != n:
            raise Fail(f"boot {n}: the record's last decision is boot {dec['boot']}")
        attempt = st.get("attempt") or {}
        hc = st.get("last_health_check") or {}
        if end == "healthy":
            if not (hc.get("boot") == n and hc.get("passed")):
                raise Fail(f"boot {n}: no passed health check recorded: {hc}")
            outcome = "healthy"
            evidence.append(f"health check recorded: uptime {hc['uptime_secs']} s, canary {hc['canary']}")
        elif end in ("bugcheck", "kill"):
            outcome = "crashed" if attempt.get("phase") == "in-progress" or dec["version"] is None else f"? ({attempt})"
        else:
            outcome = {"clean-shutdown": "clean-shutdown", "in-progress": "unclean (no shutdown delivered)"}.get(
                attempt.get("phase"), f"? ({attempt.get('phase')})") if dec["version"] is not None else "ended (nothing activated)"
        version = dec["version"]
        # Unclean starts of this version before this one, from the record as it was before
        # the boot: its count, plus the previous attempt if that was still in progress with
        # this version (it is charged at this start: DESIGN.md, "Attempts counts ...").
        attempts_before = None
        if version is not None:
            attempts_before = 0
            if before:
                bs = before["state"]
                for a in bs.get("attempts", []):
                    if a["version"] == version:
                        attempts_before = a["attempts"]
                pending = bs.get("attempt") or {}
                if pending.get("phase") == "in-progress" and pending.get("version") == version:
                    attempts_before += 1
        quarantined = [
            {"version": q["version"], "reason": q["reason"], "detail": q["detail"]}
            for q in st.get("quarantine", [])
            if q.get("boot") == n
        ]
        row = {
            "event": "boot", "boot": n, "version": version, "mode": dec["mode"], "reason": dec["reason"],
            "outcome": outcome, "attempts_before": attempts_before, "quarantined": quarantined,
            "printed": printed, "end": end, "evidence": evidence, "log": str(log),
        }
        # The CLI on a copy of the same store, just before this boot.
        cli = {k: shadow.get(k) for k in ("boot", "version", "mode", "reason", "attempts_before")}
        cli["quarantined"] = [
            {"version": q["version"], "reason": q["reason"], "detail": q["detail"]} for q in shadow.get("quarantined", [])
        ]
        mine = {k: row[k] for k in ("boot", "version", "mode", "reason", "attempts_before", "quarantined")}
        row["shadow_ok"] = cli == mine
        row["shadow"] = cli
        row["last_start_registry"] = last_start.hex() if last_start else None
        row["last_start_same_bytes"] = last_start is not None and last_start == shadow_report
        if printed["content"] == "version" and printed["version"] != version or (
            printed["content"] == "none" and version is not None
        ):
            raise Fail(f"boot {n}: the driver printed {printed}, the record says v{version}")
        faults = [l for l in log.read_text(errors="replace").splitlines() if FAULT.search(l)]
        if faults:
            raise Fail(f"boot {n}: a fault in Wine's output (log: {log}): {faults[:3]}")
        row["registry_mirror"] = mirror
        row["etw"] = self.etw_under_wine(n, log)
        self.collect_calls(log)
        self.rows.append(row)
        say(f"  boot {n}: {self.describe(row)}")
        return row

    def check_mirror(self, n):
        """The driver's registry mirror (Parameters\\State, read from the Wine prefix during
        the session) against `failsafectl status --json`'s registry_mirror.expected, the
        values the record the driver wrote means. The driver writes the mirror right after
        the record, so a read can fall between the two: retried for up to 10 s."""
        deadline = time.time() + 10
        while True:
            st = self.ctl.status(self.store)
            expected = (st.get("registry_mirror") or {}).get("expected")
            if expected is None:
                raise Fail(f"boot {n}: status --json has no registry_mirror.expected (record unreadable?)")
            found = self.wine.reg_query_values(STATE_KEY)
            diffs = {k: (v, found.get(k)) for k, v in expected.items() if found.get(k) != v}
            extra = sorted(set(found) - set(expected))
            if not diffs and not extra:
                return {"values": len(expected), "record_sequence": expected["RecordSequence"], "same": True}
            if time.time() > deadline:
                raise Fail(f"boot {n}: registry mirror differs from status --json "
                           f"(name: (record, registry)): {diffs}; values the record does not mean: {extra}")
            time.sleep(0.5)

    def etw_under_wine(self, n, log: Path):
        """What Wine did with the ETW provider this boot: the driver must have asked for the
        Etw* routines, found none (Wine 8.0's ntoskrnl exports none), said it runs without
        the provider, and called none of them."""
        text = log.read_text(errors="replace")
        line = ETW_NOT_REGISTERED.search(text)
        if not line:
            raise Fail(f"boot {n}: no 'ETW provider' line from the driver (log: {log})")
        wine_says = re.search(r'MmGetSystemRoutineAddress L"(Etw\w+)" not found', text)
        called = sorted(set(re.findall(r":Call ntoskrnl\.exe\.(Etw\w+)\(", text)))
        if called:
            raise Fail(f"boot {n}: the driver called {called} under Wine (log: {log})")
        if "not registered" not in line.group(1):
            raise Fail(f"boot {n}: the driver registered its ETW provider under Wine: {line.group(0)}")
        return {"driver": line.group(0).split("failsafeflt: ", 1)[1],
                "wine": wine_says.group(0) if wine_says else None, "etw_calls": called}

    @staticmethod
    def mirror_etw_text(h):
        m, e = h["registry_mirror"], h["etw"]
        return (f"Parameters\\State = status --json registry_mirror.expected: {m['values']} values, "
                f"RecordSequence {m['record_sequence']}; ETW: {e['driver']} (Wine: {e['wine'] or 'no MmGetSystemRoutineAddress line'}); "
                f"Etw* calls: {len(e['etw_calls'])}")

    def set_params(self, values):
        for name, v in values.items():
            self.wine.run("reg", "add", PARAMS_KEY, "/v", name, "/t", "REG_DWORD", "/d", str(v), "/f")

    def describe(self, r):
        v = f"v{r['version']}" if r["version"] is not None else "none"
        q = "".join(f"; quarantined v{x['version']} ({x['reason']}: {x['detail']})" for x in r["quarantined"])
        return (f"{v} {r['mode']} {r['reason']} -> {r['outcome']}{q} | printed InitSafeBootMode="
                f"{r['printed']['InitSafeBootMode']}, content {r['printed']['content']} {r['printed']['version']}")

    def collect_calls(self, log: Path):
        base = None
        for line in log.read_text(errors="replace").splitlines():
            m = DRIVER_INIT.search(line)
            if m:
                base = int(m.group(1), 16) - self.entry_rva
                continue
            r = RELAY.match(line)
            if r and r.group(2) == "Call" and base is not None:
                fn = owner(self.syms, int(r.group(7), 16) - base + 0x180000000)
                key = (fn, f"{r.group(3)}!{r.group(4)}")
                self.calls[key] = self.calls.get(key, 0) + 1
            for rx, who in ((r"Calling dpc->DeferredRoutine ([0-9A-Fa-f]+)", "timer DPC"),
                            (r"run_work_item_worker [0-9A-Fa-f]+: calling ([0-9A-Fa-f]+)", "work item")):
                w = re.search(rx, line)
                if w and base is not None:
                    a = int(w.group(1), 16)
                    if 0 <= a - base < self.image_size:
                        key = (owner(self.syms, a - base + 0x180000000), f"called by Wine ({who})")
                        self.calls[key] = self.calls.get(key, 0) + 1

    # -- the scenario
    def run(self, full):
        self.setup()
        say("\nhosted: scenario 1 (crash-loop) with the real failsafeflt.sys (drill build) under Wine - NOT Windows")
        self.stage(1, init=True)
        self.boot("healthy")
        self.stage(2)
        for _ in range(3):
            self.boot("bugcheck")
        self.boot("healthy")
        # The scenario's clean shutdown; the next boot is an operator's ForceSafeMode = 1.
        self.boot("shutdown", set_next={"ForceSafeMode": 1} if full else None)
        if full:
            say("\nhosted: beyond scenario 1 - ForceSafeMode, power loss right after the attempt write")
            self.boot("shutdown", force_safe_mode=True, set_next={"ForceSafeMode": 0})
            self.boot("kill")
            self.boot("healthy", unload=True)

    # -- the July 2024 scenario (issue 11): live updates through the control device
    def ioctl(self, req: bytes, read=False):
        """ioctl.exe under Wine: the completed process (read: a read-only handle and the
        read IOCTL, as `status` and `watch` send them)."""
        return subprocess.run(["wine", r"C:\failsafe-ioctl.exe", *(["--read"] if read else []), req.hex()],
                              env=self.wine.env(), capture_output=True, text=True)

    def control(self, kind, arg=0, raw=None, read=False):
        """One request through the driver's control device (ioctl.exe under Wine)."""
        req = raw if raw is not None else control_request(kind, arg)
        r = self.ioctl(req, read)
        if r.returncode != 0:
            raise Fail(f"ioctl.exe {req.hex()}: exit {r.returncode}: {r.stderr.strip()}")
        return control_response(bytes.fromhex(r.stdout.strip()))

    def live_row(self, what, resp, expect):
        ok = all(resp.get(k) == v for k, v in expect.items())
        row = {"event": "live", "boot": self.boot_no, "what": what, "response": resp, "expected": expect, "ok": ok}
        self.rows.append(row)
        say(f"  live, boot {self.boot_no}: {what}: {resp} {'as expected' if ok else f'EXPECTED {expect}'}")
        if not ok:
            raise Fail(f"live step '{what}': {resp}, expected {expect}")
        return resp

    def run_live(self, ioctl_exe: Path):
        self.setup()
        shutil.copyfile(ioctl_exe, self.prefix / "drive_c" / "failsafe-ioctl.exe")
        self.ctl.run("compile", self.sample, "-o", self.work / "3.fsc", "--version", 3, "--sign", self.key)
        say("\nhosted: July 2024 (live updates through the control device) with the real failsafeflt.sys "
            "(drill build) under Wine - NOT Windows")
        self.stage(1, init=True)

        def push_v2_then_crash(s):
            self.live_row("query", self.control(KIND_QUERY),
                          {"status": 0, "active": 1, "mode": 1, "reason": 1, "flags": FLAG_HEALTHY | FLAG_CHECKED})
            self.stage(2)
            self.live_row("activate v2", self.control(KIND_ACTIVATE, 2), {"status": 0, "version": 2, "boot": 1})
            rec = self.ctl.status(self.store)["state"]
            attempt, dec = rec.get("attempt") or {}, rec["last_decision"]
            if not (attempt.get("version") == 2 and attempt.get("phase") == "in-progress"
                    and dec["reason"] == "live-update" and dec["version"] == 2):
                raise Fail(f"after the live activation the record shows {attempt} / {dec}")
            say("  record: attempt v2 in progress, last decision live-update v2 (durable before the swap)")
            self.live_row("query", self.control(KIND_QUERY),
                          {"status": 0, "active": 2, "reason": 14, "flags": FLAG_LIVE, "lkg": 1})
            self.live_row("activate v2 again", self.control(KIND_ACTIVATE, 2), {"status": 2})
            self.live_row("bad magic", self.control(0, raw=b"XXXX" + bytes(12)), {"status": 1002, "kind": 0})
            pids = host_pids_with_driver()
            if len(pids) != 1:
                raise Fail(f"expected one host process with the driver, found {pids}")
            os.kill(pids[0], signal.SIGKILL)
            say(f"  crash within seconds of the live push: SIGKILL to winedevice.exe (pid {pids[0]})")

        def push_v3(s):
            self.stage(3)
            self.live_row("activate v3", self.control(KIND_ACTIVATE, 3), {"status": 0, "version": 3})
            deadline = time.time() + HEALTHY_AFTER + 60
            while time.time() < deadline:
                rec = self.ctl.status(self.store)["state"]
                hc = rec.get("last_health_check") or {}
                if hc.get("version") == 3 and hc.get("passed"):
                    break
                time.sleep(0.5)
            lkg = (rec.get("last_known_good") or {}).get("version")
            if lkg != 3:
                raise Fail(f"v3 did not become last-known-good after its health window: {rec.get('last_health_check')}")
            say(f"  record: v3 healthy after its own window (uptime {hc['uptime_secs']} s since the swap), last-known-good v3")
            self.live_row("query", self.control(KIND_QUERY),
                          {"status": 0, "active": 3, "lkg": 3,
                           "flags": FLAG_LIVE | FLAG_HEALTHY | FLAG_CHECKED})
            self.live_row("rollback (last-known-good runs)", self.control(KIND_ROLLBACK), {"status": 2})
            # Least privilege: a read-only handle with the read IOCTL queries and reads events;
            # a change sent that way is refused by the driver (STATUS_ACCESS_DENIED, which
            # DeviceIoControl reports as ERROR_ACCESS_DENIED, 5).
            self.live_row("query (read-only handle, read IOCTL)", self.control(KIND_QUERY, read=True),
                          {"status": 0, "active": 3, "lkg": 3})
            self.live_row("read events from cursor 0 (read-only)", self.control(KIND_EVENTS, 0, read=True),
                          {"status": 0, "dropped": 0, "first": 0, "events": []})
            r = self.ioctl(control_request(KIND_FORCE_SAFE, 1), read=True)
            denied = r.returncode == 3 and "error 5" in r.stderr
            self.live_row("force-safe-mode on through the read IOCTL",
                          {"exit": r.returncode, "stderr": r.stderr.strip(), "denied": denied}, {"denied": True})
            if self.ctl.status(self.store)["state"]["force_safe_mode"]:
                raise Fail("a change through the read IOCTL reached the record")
            # The operator's changes through the driver, the record's one writer while it
            # runs: refused without confirmation where they re-enable a crash loop; raced
            # against a live push (both are record writes, serialized by the driver's lock;
            # before, the console wrote the file beside the driver and one could be lost).
            self.live_row("unquarantine v2 (crash-loop) unconfirmed", self.control(KIND_UNQUARANTINE, 2),
                          {"status": 17})
            self.ctl.run("compile", self.sample, "-o", self.work / "4.fsc", "--version", 4, "--sign", self.key)
            self.stage(4)
            got = {}
            racers = [
                threading.Thread(target=lambda: got.__setitem__("push", self.control(KIND_ACTIVATE, 4))),
                threading.Thread(target=lambda: got.__setitem__("release", self.control(KIND_UNQUARANTINE_YES, 2))),
            ]
            for t in racers:
                t.start()
            for t in racers:
                t.join()
            self.live_row("race: activate v4 live", got.get("push", {}), {"status": 0, "version": 4})
            self.live_row("race: unquarantine v2 confirmed", got.get("release", {}), {"status": 0})
            rec = self.ctl.status(self.store)["state"]
            attempt = rec.get("attempt") or {}
            kept = [q["version"] for q in rec.get("quarantine", [])]
            ok = attempt.get("version") == 4 and attempt.get("phase") == "in-progress" and 2 not in kept
            self.live_row("race: the record keeps both writes",
                          {"attempt": attempt, "quarantined": kept, "ok": ok}, {"ok": True})
            say("  record after the race: v4's live attempt in progress and v2 released (no write lost)")

        self.boot("healthy", during=push_v2_then_crash)
        self.boot("bugcheck")
        self.boot("bugcheck")
        self.boot("healthy", during=push_v3)

    def check_live(self):
        """The July 2024 boots against what the state machine says (docs/boot-safety.md)."""
        want = [
            (1, 1, "normal", "newest-content", "healthy", 0, []),
            (2, 2, "normal", "newest-content", "crashed", 1, []),
            (3, 2, "normal", "newest-content", "crashed", 2, []),
            (4, 1, "fallback", "newer-quarantined", "healthy", 0, [(2, "crash-loop", "3 unclean starts")]),
        ]
        failures = []
        hosted = [r for r in self.rows if r["event"] == "boot"]
        say("\nJuly 2024, hosted: boot | content mode reason outcome (attempts before) | as the state machine says")
        for w, h in zip(want, hosted):
            got = (h["boot"], h["version"], h["mode"], h["reason"], h["outcome"], h["attempts_before"],
                   [(q["version"], q["reason"], q["detail"]) for q in h["quarantined"]])
            ok = got == w
            say(f"  {got} {'yes' if ok else f'NO, expected {w}'}; decision vs CLI on the same store: "
                f"{'same' if h['shadow_ok'] else 'DIFFERENT'}; LastStart "
                f"{'= CLI start report' if h['last_start_same_bytes'] else 'DIFFERS'}")
            say(f"    {self.mirror_etw_text(h)}")
            if not ok:
                failures.append(f"boot {h['boot']}: {got}, expected {w}")
            if not h["shadow_ok"]:
                failures.append(f"boot {h['boot']}: differs from the CLI on the same store: {h['shadow']}")
            if not h["last_start_same_bytes"]:
                failures.append(f"boot {h['boot']}: LastStart differs from the CLI's start report")
        if len(hosted) != len(want):
            failures.append(f"{len(hosted)} boots run, {len(want)} expected")
        return failures

    def compare(self, drill_json):
        drill = [r for r in drill_json["timeline"] if r["event"] == "boot"]
        hosted = [r for r in self.rows if r["event"] == "boot"]
        say("\nscenario 1: failsafectl drill 1 (portable start sequence, child processes) | hosted (failsafeflt.sys under Wine)")
        say(f"{'boot':<5}{'drill: content mode reason outcome':<52}{'hosted: content mode reason outcome':<60}match")
        failures, gaps = [], []
        for d in drill:
            h = next((r for r in hosted if r["boot"] == d["boot"]), None)
            dv = f"v{d['version']}" if d.get("version") else "none"
            dtext = f"{dv:<5} {d['mode']:<9}{d['reason']:<19}{d['outcome']}"
            if h is None:
                failures.append(f"boot {d['boot']}: not run hosted")
                say(f"{d['boot']:<5}{dtext:<52}{'(not run)':<60}NO")
                continue
            hv = f"v{h['version']}" if h["version"] is not None else "none"
            htext = f"{hv:<5} {h['mode']:<9}{h['reason']:<19}{h['outcome']}"
            same_decision = (
                (d.get("version"), d["mode"], d["reason"], d.get("attempts_before", 0))
                == (h["version"], h["mode"], h["reason"], h["attempts_before"])
                and [(q["version"], q["reason"], q["detail"]) for q in d.get("quarantined", [])]
                == [(q["version"], q["reason"], q["detail"]) for q in h["quarantined"]]
            )
            if not same_decision:
                verdict = "NO"
                failures.append(f"boot {d['boot']}: decision differs: drill {d} hosted {h}")
            elif d["outcome"] == h["outcome"]:
                verdict = "yes"
            elif d["outcome"] == "clean-shutdown" and h["outcome"] == "unclean (no shutdown delivered)":
                verdict = "decision yes; outcome: HOST GAP"
                gaps.append(d["boot"])
            else:
                verdict = "NO"
                failures.append(f"boot {d['boot']}: outcome differs: drill {d['outcome']} hosted {h['outcome']}")
            say(f"{d['boot']:<5}{dtext:<52}{htext:<60} {verdict}")
        for g in gaps:
            say(f"  HOST GAP, boot {g}: the drill's clean shutdown cannot be delivered under Wine 8.0: its "
                "IoRegisterShutdownNotification is a stub (no IRP_MJ_SHUTDOWN is ever sent) and its "
                "FltRegisterFilter never wires FilterUnloadCallback (DriverUnload stays NULL: `net stop` logs "
                "'does not support unloading'). The record shows the attempt still in progress; the "
                "driver's shutdown and unload paths did not run. Not claimed.")
        say("\nevery hosted boot: the driver's decision vs failsafectl boot on a copy of the same store just before it")
        for h in hosted:
            ok = "same" if h["shadow_ok"] else f"DIFFERENT: cli {h['shadow']}"
            lb = "LastStart (REG_BINARY) = CLI start report, byte for byte" if h["last_start_same_bytes"] else (
                f"LastStart DIFFERS: registry {h['last_start_registry']}")
            say(f"  boot {h['boot']}: decision {ok}; {lb}; ended by {h['end']}: {'; '.join(h['evidence']) or '-'}")
            say(f"    {self.mirror_etw_text(h)}")
            if not h["shadow_ok"]:
                failures.append(f"boot {h['boot']}: differs from the CLI on the same store: {h['shadow']}")
            if not h["last_start_same_bytes"]:
                failures.append(f"boot {h['boot']}: LastStart differs from the CLI's start report")
        return failures, gaps

    def print_calls(self):
        say("\nkernel routines the driver called (Wine +relay: caller by return address and the link map), "
            "and driver routines Wine called:")
        by_fn = {}
        for (fn, routine), k in sorted(self.calls.items()):
            by_fn.setdefault(fn, []).append(f"{routine} x{k}")
        for fn, rs in sorted(by_fn.items()):
            say(f"  {fn}: {', '.join(rs)}")


# ---------------------------------------------------------------- dormancy (issue 20)
# A drill build that faults in its own setup (DrillSetupFault = 1, read by drill builds
# only): three boots bugcheck after the build's attempt is durable and before any content
# is chosen; the fourth start is dormant (DriverEntry returns having set nothing up); a new
# build (the release image of the same sources: another identity) runs v1 again.

DORMANT_LINE = re.compile(r"failsafeflt: dormant: build (\S+) has had (\d+) unclean starts without content "
                          r"\(dormant since boot (\d+)\)")


def dormancy_boot(d, kind, set_during=None):
    """One hosted boot of the dormancy scenario: `fault` (the setup bugcheck), `dormant`
    (the start refuses itself) or `healthy` (v1 runs until its health check passes).
    `set_during`: Parameters values written while this boot's session runs (a `wine reg`
    outside a session would start one, and the driver with it: an extra boot)."""
    d.boot_no += 1
    n = d.boot_no
    shadow_args = ("--crash-at", "driver-setup") if kind == "fault" else ()
    shadow = None
    if kind != "fault":
        shadow, shadow_report = d.ctl.shadow_boot(d.store, d.work / "shadow", False, d.public_hex, d.build,
                                                  shadow_args)
    log = d.work / f"boot-{n}.log"
    s = Session(d.wine, log, d.entry_rva, d.image_size)
    row = {"event": "boot", "boot": n, "kind": kind, "build": d.build}
    try:
        if kind == "fault":
            line = s.wait_for(r"failsafeflt: build \S+ attempt durable \(boot (\d+)\)", 90)
            bc = s.wait_for(r"err:ntoskrnl:KeBugCheckEx", 30)
            if not line or not bc or "46534453" not in bc.lower():  # DRILL_SETUP_BUGCHECK, "FSDS"
                raise Fail(f"boot {n}: expected the build's attempt line, then the setup bugcheck (log: {log}): {line} / {bc}")
            if s.wait_for(r"failsafeflt: start:", 1):
                raise Fail(f"boot {n}: content was chosen before the setup fault")
            row["evidence"] = [line.split("failsafeflt: ", 1)[1], bc.split(":", 1)[1]]
        elif kind == "dormant":
            line = s.wait_for(r"failsafeflt: (dormant|start|build)", 90)
            if not line or "dormant" not in line:
                raise Fail(f"boot {n}: expected the dormant line first (log: {log}): {line}")
            m = DORMANT_LINE.search(line)
            deadline = time.time() + 15
            while host_pids_with_driver() and time.time() < deadline:
                time.sleep(0.2)
            row["image_mapped_after"] = bool(host_pids_with_driver())
            row["evidence"] = [line.split("failsafeflt: ", 1)[1]]
            row["printed"] = {"unclean": int(m.group(2)), "since": int(m.group(3))} if m else None
        else:
            start = s.wait_for(r"failsafeflt: start:", 90)
            if not start:
                raise Fail(f"boot {n}: no start line (log: {log})")
            deadline = time.time() + HEALTHY_AFTER + 60
            while time.time() < deadline:
                hc = d.ctl.status(d.store)["state"].get("last_health_check") or {}
                if hc.get("boot") == n and hc.get("passed"):
                    break
                time.sleep(0.5)
            else:
                raise Fail(f"boot {n}: no passed health check (log: {log})")
            row["evidence"] = [start.split("failsafeflt: ", 1)[1], f"health check passed, uptime {hc['uptime_secs']} s"]
        row["last_start"] = d.wine.reg_query_binary(PARAMS_KEY, "LastStart")
        if set_during:
            d.set_params(set_during)
    finally:
        s.power_off()
    st = d.ctl.status(d.store)
    drv = st["state"].get("driver") or {}
    dec = st["state"]["last_decision"]
    row.update(driver=drv, decision=(dec["mode"], dec["reason"], dec["version"], dec["boot"]))
    if shadow is not None:
        row["shadow"] = (shadow["mode"], shadow["reason"], shadow.get("version"))
        ls = row.pop("last_start")
        row["last_start_same_bytes"] = ls is not None and ls == shadow_report
    else:
        row.pop("last_start")
    d.rows.append(row)
    say(f"  boot {n} ({kind}): record {row['decision']}, driver {drv.get('unclean_starts_without_content')} "
        f"unclean without content, dormant {drv.get('dormant')}; {'; '.join(row['evidence'])}")
    return row


def run_dormancy(d, new_image: Path):
    d.setup()
    say("\nhosted: dormancy (issue 20) with the real failsafeflt.sys (drill build, DrillSetupFault) under Wine "
        "- NOT Windows")
    d.stage(1, init=True)
    failures = []
    first = dormancy_boot(d, "healthy", set_during={"DrillSetupFault": 1})
    if first["decision"][:3] != ("normal", "newest-content", 1):
        failures.append(f"boot 1: {first['decision']}")
    for k in range(THRESHOLD):
        r = dormancy_boot(d, "fault")
        drv = r["driver"]
        if (drv.get("attempt") or {}).get("phase") != "in-progress" or drv.get("unclean_starts_without_content") != k:
            failures.append(f"setup fault {k + 1}: the record shows {drv}")
    for i in range(2):
        # The last dormant boot's session clears the fault value: the fixed build comes next.
        r = dormancy_boot(d, "dormant", set_during={"DrillSetupFault": 0} if i == 1 else None)
        want = ("safe", "driver-dormant", None)
        if r["decision"][:3] != want or r["shadow"] != want:
            failures.append(f"boot {r['boot']}: {r['decision']} / CLI {r['shadow']}, expected {want}")
        if (r["driver"].get("dormant") or {}).get("since_boot") != 2 + THRESHOLD:
            failures.append(f"boot {r['boot']}: dormant since {r['driver'].get('dormant')}")
        # Whether the host unmaps an image whose DriverEntry failed is Wine's business
        # (Windows: Microsoft Learn, "DriverEntry Return Values"); shown, not judged.
        say(f"  boot {r['boot']}: image still mapped in winedevice.exe after the dormant start: "
            f"{'yes' if r['image_mapped_after'] else 'no'}")
        if not r["last_start_same_bytes"]:
            failures.append(f"boot {r['boot']}: LastStart differs from the CLI's start report")
    # The fixed build: another image (another identity); the fault value no longer applies.
    drivers = d.prefix / "drive_c" / "windows" / "system32" / "drivers"
    shutil.copyfile(new_image, drivers / "failsafeflt.sys")
    d.build = build_identity(new_image)
    say(f"  -- a new driver build is installed: {new_image.name}, build {d.build}")
    r = dormancy_boot(d, "healthy")
    if r["decision"][:3] != ("normal", "newest-content", 1) or r["shadow"] != ("normal", "newest-content", 1):
        failures.append(f"new build: {r['decision']} / CLI {r['shadow']}")
    if r["driver"].get("build") != d.build or r["driver"].get("unclean_starts_without_content") != 0:
        failures.append(f"new build: the record's build is {r['driver']}")
    if not r["last_start_same_bytes"]:
        failures.append("new build: LastStart differs from the CLI's start report")
    boots = [x for x in d.rows if x["event"] == "boot"]
    say(f"\ndormancy, hosted: {len(boots)} boots: 1 healthy, {THRESHOLD} setup faults (charged to the build), "
        f"2 dormant (nothing set up), 1 on a new build (v1 healthy)")
    return failures


# ---------------------------------------------------------------- reparse (issue 19, finding 4)
# The store behind a link: ContentDirectory (C:\windows\Failsafe) is replaced by a link to a
# directory a standard user can write (C:\users\Public\Failsafe-planted), holding a copy of
# the store and a `canary.tmp` that links to a file outside it (C:\windows\victim.dat). A
# driver that follows the link runs its canary there as SYSTEM: FILE_OVERWRITE_IF truncates
# the victim and FILE_DELETE_ON_CLOSE deletes it. The driver must refuse the directory
# before anything is written (storedir.rs), and the victim must survive.
#
# What Wine 8.0 can show (its sources, wine-8.0: dlls/ntdll/unix/file.c, server/fd.c; and
# probed): a Unix symbolic link to a directory is reported FILE_ATTRIBUTE_REPARSE_POINT by
# name (get_file_info: lstat, then "is a symbolic link and a directory, consider these
# reparse points"), so the link on the directory stands for a junction and is shown here.
# A link on a *file* is not: Wine reports it as the file (attributes 0x20), ignores
# OBJ_DONT_REPARSE (never read) and FILE_OPEN_REPARSE_POINT (used for mount points only),
# opens the target (server/fd.c open_fd: open() without O_NOFOLLOW) and deletes the target
# on close (fd->unix_name = realpath(...)). So the child opens' flags cannot be shown under
# Wine: a fixed driver would delete the victim through a linked canary.tmp in a real store
# directory too. Those flags are checked by driver/src/reparse.rs's unit tests instead.

VICTIM = b"a file outside the store that only an administrator may change\n"


def run_reparse(d):
    d.setup()
    say("\nhosted: the store behind a link (issue 19, finding 4) with the real failsafeflt.sys (drill build) "
        "under Wine - NOT Windows")
    d.stage(1, init=True)
    drive_c = d.prefix / "drive_c"
    planted = drive_c / "users" / "Public" / "Failsafe-planted"
    victim = drive_c / "windows" / "victim.dat"
    victim.write_bytes(VICTIM)
    shutil.move(str(d.store), str(planted))
    os.symlink(planted, d.store, target_is_directory=True)
    os.symlink(victim, planted / "canary.tmp")

    def snapshot():
        """Every file of the planted store but the linked canary, with its bytes."""
        return {str(f.relative_to(planted)): f.read_bytes() for f in sorted(planted.rglob("*"))
                if f.is_file() and not f.is_symlink()}

    store_before = snapshot()
    say(r"  -- C:\windows\Failsafe is now a link to C:\users\Public\Failsafe-planted (a copy of the store), "
        r"whose canary.tmp links to C:\windows\victim.dat")
    failures = []

    def victim_state():
        if not victim.exists():
            return "DELETED"
        b = victim.read_bytes()
        return "intact" if b == VICTIM else f"CHANGED ({len(b)} bytes: {b[:32]!r})"

    # Boot 1: the link is there. Refused, or (a driver that follows it) started: then its
    # health check, canary included, is waited for.
    d.boot_no += 1
    log = d.work / f"boot-{d.boot_no}.log"
    s = Session(d.wine, log, d.entry_rva, d.image_size)
    try:
        line = s.wait_for(r"failsafeflt: (start:|not started)", 90)
        canary = None
        if line and "failsafeflt: start:" in line:
            deadline = time.time() + HEALTHY_AFTER + 60
            while time.time() < deadline:
                hc = d.ctl.status(d.store)["state"].get("last_health_check") or {}
                if hc.get("boot") == d.boot_no:
                    canary = f"health check ran (passed {hc.get('passed')}, canary {hc.get('canary')})"
                    break
                time.sleep(0.5)
        else:
            s.wait_for(r"<never>", 3)  # a driver that refused must do nothing more
    finally:
        s.power_off()
    text = log.read_text(errors="replace")
    d.collect_calls(log)
    said = line.split("failsafeflt: ", 1)[1] if line else "(no start or refusal line)"
    state = victim_state()
    after = snapshot()
    written = sorted(k for k in set(after) | set(store_before) if after.get(k) != store_before.get(k))
    say(f"  boot {d.boot_no} (the link): driver: {said}")
    if canary:
        say(f"    then: {canary}")
    say(rf"    victim C:\windows\victim.dat: {state}; the planted store: "
        f"{'unchanged (' + str(len(after)) + ' files)' if not written else 'WRITTEN: ' + ', '.join(written)}")
    want = "not started: ContentDirectory: is a junction or symbolic link"
    if want not in said:
        failures.append(f"boot {d.boot_no}: expected '{want}', the driver said: {said}")
    if re.search(r"failsafeflt: start:", text):
        failures.append(f"boot {d.boot_no}: the driver started through the link")
    if state != "intact":
        failures.append(rf"boot {d.boot_no}: C:\windows\victim.dat {state} (the canary, as SYSTEM, through the link)")
    if written:
        failures.append(f"boot {d.boot_no}: written through the link: {', '.join(written)}")
    faults = [x for x in text.splitlines() if FAULT.search(x)]
    if faults:
        failures.append(f"boot {d.boot_no}: a fault in Wine's output: {faults[:3]}")
    d.rows.append({"event": "boot", "boot": 1, "what": "link", "driver": said, "victim": state, "written": written})

    # Boot 2, the control: the same store as a real directory (no link, no linked canary)
    # starts and passes its health check: the refusal above was the link's.
    d.store.unlink()
    (planted / "canary.tmp").unlink()
    shutil.move(str(planted), str(d.store))
    d.boot_no += 1
    log = d.work / f"boot-{d.boot_no}.log"
    s = Session(d.wine, log, d.entry_rva, d.image_size)
    hc, counted = {}, None
    try:
        line = s.wait_for(r"failsafeflt: (start:|not started)", 90)
        if line and "failsafeflt: start:" in line:
            deadline = time.time() + HEALTHY_AFTER + 60
            while time.time() < deadline:
                st = d.ctl.status(d.store)["state"]
                counted = st["last_decision"]["boot"]  # the record's boot number
                hc = st.get("last_health_check") or {}
                if hc.get("boot") == counted:
                    break
                time.sleep(0.5)
    finally:
        s.power_off()
    d.collect_calls(log)
    said = line.split("failsafeflt: ", 1)[1] if line else "(no start or refusal line)"
    passed = hc.get("boot") == counted and hc.get("passed")
    say(f"  boot {d.boot_no} (control, the same store as a real directory): driver: {said}; the record's "
        f"boot {counted}; health check {'passed, canary ' + str(hc.get('canary')) if passed else 'NOT passed: ' + str(hc)}; "
        rf"victim C:\windows\victim.dat: {victim_state()}")
    if counted != 1:
        failures.append(f"control boot: the record counts it as boot {counted}: the boot through the link "
                        "was counted (expected 1: a refused start charges nothing)")
    if not (line and START_LINE.search(line) and START_LINE.search(line).group(2) == "version"
            and START_LINE.search(line).group(3) == "1"):
        failures.append(f"control boot: expected a start on v1, the driver said: {said}")
    if not passed:
        failures.append(f"control boot: no passed health check: {hc}")
    if victim_state() != "intact":
        failures.append(rf"control boot: C:\windows\victim.dat {victim_state()}")
    faults = [x for x in log.read_text(errors="replace").splitlines() if FAULT.search(x)]
    if faults:
        failures.append(f"control boot: a fault in Wine's output: {faults[:3]}")
    d.rows.append({"event": "boot", "boot": 2, "what": "control", "driver": said, "passed": bool(passed)})
    return failures


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sys", required=True, help="the drill image (failsafeflt-drill.sys)")
    ap.add_argument("--map", required=True, help="its link map")
    ap.add_argument("--ctl", required=True, help="failsafectl")
    ap.add_argument("--sample", required=True, help="content source (content/sample.toml)")
    ap.add_argument("--work", required=True, help="scratch directory (removed first)")
    ap.add_argument("--short", action="store_true", help="scenario 1 only")
    ap.add_argument("--json", help="write the hosted timeline here")
    ap.add_argument("--scenario", choices=["crash-loop", "july-2024", "dormancy", "reparse"], default="crash-loop",
                    help="crash-loop: scenario 1 against failsafectl drill 1; july-2024: live updates "
                         "through the control device (needs --ioctl); dormancy: a build faulting in its "
                         "setup goes dormant, a new build (--new-sys) runs; reparse: the store behind a "
                         "link must be refused and a file outside it survive (issue 19, finding 4)")
    ap.add_argument("--new-sys", help="dormancy: the new build's image (another identity)")
    ap.add_argument("--ioctl", help="the control client (driver/hosted/ioctl.c built with MinGW-w64)")
    a = ap.parse_args()
    d = Drill(a)
    t0 = time.time()
    try:
        if a.scenario == "july-2024":
            d.run_live(Path(a.ioctl).resolve())
            failures, gaps = d.check_live(), []
        elif a.scenario == "dormancy":
            failures, gaps = run_dormancy(d, Path(a.new_sys).resolve()), []
        elif a.scenario == "reparse":
            failures, gaps = run_reparse(d), []
        else:
            d.run(full=not a.short)
            drill_json = json.loads(d.ctl.run("drill", "1", "--json"))
            failures, gaps = d.compare(drill_json)
        d.print_calls()
    except Fail as e:
        say(f"hosted drill: FAILED: {e}")
        d.wine.kill()
        return 1
    finally:
        d.wine.kill()
    if a.json:
        Path(a.json).write_text(json.dumps({"timeline": d.rows, "calls": [[f, r, k] for (f, r), k in d.calls.items()]}, indent=1))
    boots = sum(1 for r in d.rows if r["event"] == "boot")
    say(f"\nhosted drill (Wine {subprocess.run(['wine', '--version'], capture_output=True, text=True).stdout.strip()}, "
        f"not Windows): {boots} boots in {time.time() - t0:.0f} s; logs in {d.work}")
    if failures:
        for f in failures:
            say(f"  DIFFERENCE: {f}")
        say(f"hosted drill: {len(failures)} difference(s): FAILED")
        return 1
    if a.scenario == "reparse":
        say("hosted drill: the store behind a link was refused with the line naming it, nothing was written "
            "through it, the file outside it is intact, and the same store as a real directory started")
        return 0
    say(f"hosted drill: every decision matches; {len(gaps)} declared host gap(s) (clean shutdown not deliverable under Wine 8.0)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
