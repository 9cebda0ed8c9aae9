"""Wine: the prefix (environment, registry queries, ending a session), the host
processes that have the driver mapped, and one session = one boot, keeping the driver's
part of its debug output."""

import os
import re
import subprocess
import threading
import time
from pathlib import Path

from .common import DRIVER_INIT, RELAY, Fail


class Wine:
    """A prefix. The Filter Manager double's (driver/hosted/double/wine.py) is this one with
    its own DLL overrides and longer waits."""

    OVERRIDES = "mscoree,mshtml="  # no Mono / Gecko installer prompts
    RUN_TIMEOUT = None
    END_TIMEOUT = 60

    def __init__(self, prefix: Path):
        self.prefix = prefix

    def env(self, debug="-all"):
        e = dict(os.environ)
        e.update(
            WINEPREFIX=str(self.prefix),
            WINEDEBUG=debug,
            WINEARCH="win64",
            WINEDLLOVERRIDES=self.OVERRIDES,
            DISPLAY="",
        )
        return e

    def run(self, *args, check=True, timeout=None):
        r = subprocess.run(["wine", *args], env=self.env(), capture_output=True, text=True,
                           timeout=timeout or self.RUN_TIMEOUT)
        if check and r.returncode != 0:
            raise Fail(f"wine {' '.join(map(str, args))}: exit {r.returncode}: {r.stdout}{r.stderr}")
        return r

    def kill(self):
        subprocess.run(["wineserver", "-k"], env=self.env(), capture_output=True)
        subprocess.run(["wineserver", "-w"], env=self.env(), capture_output=True)

    def wait_end(self, timeout=None):
        timeout = timeout or self.END_TIMEOUT
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
