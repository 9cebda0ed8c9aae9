"""What every part of the hosted drill stands on: the service's registry keys and drill
settings, the patterns of the driver's and Wine's output lines it reads, `say` and `Fail`."""

import re

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


def say(msg=""):
    print(msg, flush=True)


class Fail(Exception):
    pass
