"""The double's Wine session: a prefix with the Filter Manager double installed as the
`FltMgr` service and the drill image as `failsafeflt` (which depends on it), one session
kept alive by an ordinary process, the session's debug output read line by line, and the
two clients (the double's, the driver's control device's). HOSTED under Wine with a test
double of Filter Manager, not Windows.

Wine is configured, not changed: `WINEDLLOVERRIDES=fltmgr.sys=n` makes its loader take
the double (copied over the prefix's `system32\\drivers\\fltmgr.sys`) instead of its
builtin stub; both services are in the load-order group "FSFilter Anti-Virus", so Wine's
services.exe runs them in one winedevice.exe (its `get_winedevice_process` groups driver
services by that value)."""

import re
import shutil
import struct
import subprocess
import threading
import time
from pathlib import Path

import proto
from boot.common import Fail, say  # noqa: F401 (the double's scenarios take them from here)
from boot.wine import Wine as BootWine

HERE = Path(__file__).resolve().parent
SERVICE = "failsafeflt"
SELFTEST = "fltselftest"
SERVICE_KEY = r"HKLM\System\CurrentControlSet\Services\failsafeflt"
PARAMS_KEY = SERVICE_KEY + r"\Parameters"
DOUBLE_KEY = r"HKLM\System\CurrentControlSet\Services\FltMgr"
CONTENT_DIR_NT = r"\??\C:\windows\Failsafe"
GROUP = "FSFilter Anti-Virus"
FAULT = re.compile(r"Unhandled exception|page fault|unimplemented function|err:seh:|err:virtual:|"
                   r"KeBugCheckEx|EXCEPTION_|Unhandled page fault|assertion failed")


class Wine(BootWine):
    """The boot drill's prefix (boot/wine.py) with the double taking fltmgr.sys's place."""

    OVERRIDES = "mscoree,mshtml=;fltmgr.sys=n"
    RUN_TIMEOUT = 300
    END_TIMEOUT = 90


def reg_text(healthy_after: int) -> str:
    """The services, as the INF writes the driver's (Type 2, the Parameters values, the
    Instances key) but demand-started (the runner starts them with `net start`), the
    double's as Windows' FltMgr (a file-system driver the minifilter depends on), and the
    double's self-test filter (driver/hosted/double/selftest), started instead of the driver
    in a session of its own. `DrillStoreAclReportOnly`: Wine has no file security, so the
    drill build reports the store's access list instead of refusing to start (docs/windows.md,
    "The store's directory")."""
    return f"""Windows Registry Editor Version 5.00

[HKEY_LOCAL_MACHINE\\System\\CurrentControlSet\\Services\\FltMgr]
"Type"=dword:00000002
"Start"=dword:00000003
"ErrorControl"=dword:00000001
"Group"="{GROUP}"
"DisplayName"="Filter Manager TEST DOUBLE - HOSTED under Wine, not Windows"

[HKEY_LOCAL_MACHINE\\System\\CurrentControlSet\\Services\\{SERVICE}]
"Type"=dword:00000002
"Start"=dword:00000003
"ErrorControl"=dword:00000001
"Group"="{GROUP}"
"DependOnService"=hex(7):46,00,6c,00,74,00,4d,00,67,00,72,00,00,00,00,00
"DisplayName"="failsafeflt DRILL BUILD - HOSTED under Wine with a Filter Manager test double, not Windows"
"SupportedFeatures"=dword:00000003

[HKEY_LOCAL_MACHINE\\System\\CurrentControlSet\\Services\\{SERVICE}\\Parameters]
"SupportedFeatures"=dword:00000003
"Threshold"=dword:00000003
"HealthyAfterSeconds"=dword:{healthy_after:08x}
"ForceSafeMode"=dword:00000000
"DrillStoreAclReportOnly"=dword:00000001

[HKEY_LOCAL_MACHINE\\System\\CurrentControlSet\\Services\\{SERVICE}\\Parameters\\Instances]
"DefaultInstance"="Failsafe Instance"

[HKEY_LOCAL_MACHINE\\System\\CurrentControlSet\\Services\\{SERVICE}\\Parameters\\Instances\\Failsafe Instance]
"Altitude"="328770"
"Flags"=dword:00000000

[HKEY_LOCAL_MACHINE\\System\\CurrentControlSet\\Services\\{SELFTEST}]
"Type"=dword:00000002
"Start"=dword:00000003
"ErrorControl"=dword:00000001
"Group"="{GROUP}"
"DependOnService"=hex(7):46,00,6c,00,74,00,4d,00,67,00,72,00,00,00,00,00
"DisplayName"="The Filter Manager double's self-test filter - HOSTED under Wine, not Windows"
"""


class Session:
    """One Wine session with the double: keeps an ordinary process alive and reads the
    session's debug output (`warn+debugstr`: the driver's and the double's DbgPrint lines;
    errors), keeping the lines that matter in `lines` and in the log file."""

    def __init__(self, wine: Wine, log: Path, debug="err+all,warn+debugstr,fixme-all"):
        self.wine = wine
        self.lines = []
        self.cond = threading.Condition()
        self.log = log.open("w")
        self.proc = subprocess.Popen(["wine", "cmd.exe", "/c", "set /p KEEPALIVE="], stdin=subprocess.PIPE,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=wine.env(debug))
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self):
        for raw in self.proc.stderr:
            line = raw.decode("utf-8", "replace").rstrip("\n")
            self.log.write(line + "\n")
            with self.cond:
                self.lines.append(line)
                self.cond.notify_all()
        with self.cond:
            self.lines.append("<end of session output>")
            self.cond.notify_all()

    def wait_for(self, pattern, timeout, since=0):
        rx = re.compile(pattern)
        deadline = time.time() + timeout
        seen = since
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

    def mark(self):
        with self.cond:
            return len(self.lines)

    def grep(self, pattern, since=0):
        rx = re.compile(pattern)
        with self.cond:
            return [l for l in self.lines[since:] if rx.search(l)]

    def faults(self, since=0):
        return self.grep(FAULT.pattern, since)

    def end_in_order(self):
        if self.proc.stdin:
            self.proc.stdin.close()
        try:
            self.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
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


class DoubleClient:
    """The double's client (client.c) under Wine: batches of requests on threads."""

    def __init__(self, wine: Wine, work: Path):
        self.wine, self.work, self.n = wine, work, 0

    def _files(self):
        self.n += 1
        d = self.wine.prefix / "drive_c" / "double"
        d.mkdir(exist_ok=True)
        return d / f"in-{self.n}.bin", d / f"out-{self.n}.bin", rf"C:\double\in-{self.n}.bin", rf"C:\double\out-{self.n}.bin"

    @staticmethod
    def _pack(messages):
        return b"".join(struct.pack("<IHH", len(m), t, 0) + m for t, m in messages)

    @staticmethod
    def _unpack(raw):
        out, at = [], 0
        while at < len(raw):
            index, rnd, length, error, t0, t1 = struct.unpack_from("<IIIiQQ", raw, at)
            at += 32
            out.append({"index": index, "round": rnd, "error": error, "t0": t0, "t1": t1, "bytes": raw[at:at + length]})
            at += length
        return out

    def start(self, messages, seconds=None, pause_ms=0):
        """Starts the client on `messages` [(thread, request)]; returns a handle for `finish`."""
        fin, fout, win_in, win_out = self._files()
        fin.write_bytes(self._pack(messages))
        args = ["wine", r"C:\double-client.exe", win_in, win_out] + ([f"{seconds}", f"{pause_ms}"] if seconds else [])
        p = subprocess.Popen(args, env=self.wine.env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        return p, fout

    def finish(self, handle, timeout=600):
        p, fout = handle
        out, err = p.communicate(timeout=timeout)
        if p.returncode != 0:
            errs = sorted({m["error"] for m in self._unpack(fout.read_bytes()) if m["error"]}) if fout.exists() else []
            raise Fail(f"double-client.exe: exit {p.returncode}: Win32 errors {errs}: {err.strip()[-2000:]}")
        return self._unpack(fout.read_bytes())

    def send(self, messages, seconds=None, timeout=600):
        return self.finish(self.start(messages, seconds), timeout)

    def errors(self, handle):
        """Win32 errors of a finished client's requests (for a report that says which)."""
        return [m["error"] for m in self._unpack(handle[1].read_bytes()) if m["error"]]

    def one(self, request):
        r = self.send([(0, request)])
        if len(r) != 1 or r[0]["error"]:
            raise Fail(f"double request failed: {r}")
        return proto.response(r[0]["bytes"])


def control(wine: Wine, kind, arg=0):
    """One request through the driver's control device (driver/hosted/ioctl.c)."""
    from boot.protocol import control_request, control_response  # driver/hosted/boot/protocol.py
    req = control_request(kind, arg)
    r = subprocess.run(["wine", r"C:\failsafe-ioctl.exe", req.hex()], env=wine.env(), capture_output=True, text=True)
    if r.returncode != 0:
        raise Fail(f"ioctl.exe {req.hex()}: exit {r.returncode}: {r.stderr.strip()}")
    return control_response(bytes.fromhex(r.stdout.strip()))


def host_pids_with(image: str):
    pids = []
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                if image in (d / "maps").read_text(errors="replace"):
                    pids.append(int(d.name))
            except OSError:
                pass
    return pids


def setup_prefix(wine: Wine, work: Path, driver_image: Path, double_image: Path, client: Path, ioctl: Path,
                 healthy_after: int, test_key_hex: str, selftest_image: Path):
    if work.exists():
        if wine.prefix.exists():
            wine.kill()
        shutil.rmtree(work)
    work.mkdir(parents=True)
    r = subprocess.run(["wineboot", "-i"], env=wine.env(), capture_output=True, text=True)
    if r.returncode != 0:
        raise Fail(f"wineboot -i failed: {r.stderr}")
    wine.wait_end()
    drivers = wine.prefix / "drive_c" / "windows" / "system32" / "drivers"
    shutil.copyfile(driver_image, drivers / "failsafeflt.sys")
    shutil.copyfile(double_image, drivers / "fltmgr.sys")
    shutil.copyfile(selftest_image, drivers / f"{SELFTEST}.sys")
    shutil.copyfile(client, wine.prefix / "drive_c" / "double-client.exe")
    shutil.copyfile(ioctl, wine.prefix / "drive_c" / "failsafe-ioctl.exe")
    reg = work / "services.reg"
    reg.write_text(reg_text(healthy_after))
    wine.run("reg", "add", r"HKLM\Software\Microsoft\Windows NT\CurrentVersion\AeDebug", "/v", "Debugger", "/d", "false", "/f")
    wine.run("reg", "import", str(reg))
    wine.run("reg", "add", DOUBLE_KEY, "/v", "ImagePath", "/t", "REG_EXPAND_SZ",
             "/d", r"\SystemRoot\System32\drivers\fltmgr.sys", "/f")
    wine.run("reg", "add", SERVICE_KEY, "/v", "ImagePath", "/t", "REG_EXPAND_SZ",
             "/d", r"\SystemRoot\System32\drivers\failsafeflt.sys", "/f")
    wine.run("reg", "add", r"HKLM\System\CurrentControlSet\Services" + "\\" + SELFTEST, "/v", "ImagePath",
             "/t", "REG_EXPAND_SZ", "/d", rf"\SystemRoot\System32\drivers\{SELFTEST}.sys", "/f")
    wine.run("reg", "add", PARAMS_KEY, "/v", "ContentDirectory", "/t", "REG_EXPAND_SZ", "/d", CONTENT_DIR_NT, "/f")
    # Content is signed with a development key made for the run and trusted as a test key
    # (as driver/hosted/boot/drill.py's setup does: TestSigning, TestSigningKeys, TESTSIGNING boot option).
    wine.run("reg", "add", PARAMS_KEY, "/v", "TestSigning", "/t", "REG_DWORD", "/d", "1", "/f")
    wine.run("reg", "add", PARAMS_KEY, "/v", "TestSigningKeys", "/t", "REG_BINARY", "/d", test_key_hex, "/f")
    wine.run("reg", "add", r"HKLM\System\CurrentControlSet\Control", "/v", "SystemStartOptions",
             "/t", "REG_SZ", "/d", " TESTSIGNING", "/f")
    wine.wait_end()
