"""July 2024 (issue 11), as methods of Drill (drill.py): live updates through the driver's
control device (ioctl.exe under Wine), a crash, fallback, a live push that becomes
last-known-good; the boots checked against the state machine."""

import os
import shutil
import signal
import subprocess
import threading
import time
from pathlib import Path

from .common import HEALTHY_AFTER, Fail, say
from .protocol import (FLAG_CHECKED, FLAG_HEALTHY, FLAG_LIVE, KIND_ACTIVATE, KIND_EVENTS, KIND_FORCE_SAFE,
                       KIND_QUERY, KIND_ROLLBACK, KIND_UNQUARANTINE, KIND_UNQUARANTINE_YES, control_request,
                       control_response)
from .wine import host_pids_with_driver


class July2024:
    """Drill's July 2024 methods (`self` is the runner, drill.py)."""

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
