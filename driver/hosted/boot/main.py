"""The command line: the options, the scenario run, the timeline written, the verdict
printed (the exit status driver/hosted/run.sh reads)."""

import argparse
import json
import subprocess
import time
from pathlib import Path

from . import __doc__ as DRILL_DOC  # --help's description: the drill's first line (__init__.py)
from .common import Fail, say
from .dormancy import run_dormancy
from .drill import Drill
from .reparse import run_reparse


def main():
    ap = argparse.ArgumentParser(description=DRILL_DOC.split("\n")[0])
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
