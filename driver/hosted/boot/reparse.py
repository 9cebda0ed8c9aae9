"""The store behind a link (issue 19, finding 4): the driver must refuse it with the line
naming it and write nothing through it; the same store as a real directory starts."""

import os
import re
import shutil
import time

from .common import FAULT, HEALTHY_AFTER, START_LINE, say
from .wine import Session

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
