"""failsafectl as a child process: its status of a store, and its start sequence on a copy
of the store (the shadow boot every hosted boot is compared with)."""

import json
import shutil
import subprocess
from pathlib import Path

from .common import THRESHOLD, Fail


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
