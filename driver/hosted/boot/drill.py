"""The drill runner (class Drill): a fresh prefix with the service registered as the INF
writes it, content staged, one boot ended as asked and checked (the record, the CLI on a
copy of the store, LastStart, the registry mirror, ETW), the kernel routines called."""

import json
import os
import re
import shutil
import signal
import subprocess
import time
from pathlib import Path

from .common import (CONTENT_DIR_NT, DRILL_VERSION, DRIVER_INIT, ETW_NOT_REGISTERED, FAULT,
                     HEALTHY_AFTER, PARAMS_KEY, RELAY, SERVICE, SERVICE_KEY, START_LINE, STATE_KEY,
                     THRESHOLD, Fail, say)
from .crashloop import CrashLoop
from .ctl import Ctl
from .image import build_identity, owner, pe_entry_rva, pe_image_size, read_map
from .july import July2024
from .wine import Session, Wine, host_pids_with_driver


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


class Drill(CrashLoop, July2024):
    """The runner; its scenario methods come from CrashLoop (crashloop.py) and July2024
    (july.py)."""

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

    def print_calls(self):
        say("\nkernel routines the driver called (Wine +relay: caller by return address and the link map), "
            "and driver routines Wine called:")
        by_fn = {}
        for (fn, routine), k in sorted(self.calls.items()):
            by_fn.setdefault(fn, []).append(f"{routine} x{k}")
        for fn, rs in sorted(by_fn.items()):
            say(f"  {fn}: {', '.join(rs)}")
