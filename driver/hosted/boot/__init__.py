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

The parts, one file per job (each opens with what it owns): common (names every part
stands on), protocol (the control device's requests and responses), image (the PE image
and its link map), wine (the prefix, the host processes, one session = one boot), ctl
(failsafectl as a child), drill (the runner: setup, staging, one boot and its checks),
crashloop and july (the scenarios written as the runner's methods), dormancy, reparse,
main (the command line and the verdict); the entry is driver/hosted/drill.py.
"""
