"""Scenario 1's crash loop and beyond, as methods of Drill (drill.py): the boots, and the
hosted timeline compared with `failsafectl drill 1 --json`."""

from .common import say


class CrashLoop:
    """Drill's crash-loop methods (`self` is the runner, drill.py)."""

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
