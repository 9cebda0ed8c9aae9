#!/usr/bin/env bash
# The hosted drill (`cargo make hosted-drill`; docs/windows.md, "Hosted drill under Wine").
#
#   driver/hosted/run.sh [--short] [--no-build]
#
# HOSTED, NOT WINDOWS: runs the real failsafeflt.sys (the drill build that
# driver/kcheck/run.sh links) under Debian's Wine (its ntoskrnl.exe, fltmgr.sys and
# winedevice.exe, used as they are), one Wine session per boot:
#   1. scenario 1's crash loop, compared with `failsafectl drill 1`;
#   2. dormancy: the drill image faulting in its own setup (DrillSetupFault) goes dormant
#      after 3 bugchecks; the release image, another build, runs again;
#   3. "July 2024": v2 pushed live through the driver's control device (IOCTLs sent by
#      driver/hosted/ioctl.c, built here with MinGW-w64), a crash, two boots that bugcheck
#      on v2, the start on v1 with v2 quarantined, v3 pushed live and healthy.
# driver/hosted/drill.py says how.
#   --short     scenario 1 only (6 boots), no July 2024; default: also ForceSafeMode, a power
#               loss, and July 2024
#   --no-build  use the images already in target/kcheck (e.g. right after the kernel check)
# Installs wine64 (and the kernel check's packages) with apt-get when missing (CI is root).
# Logs and the Wine prefix stay in target/hosted (never committed).
set -euo pipefail
cd "$(dirname "$0")/../.."
short=""
build=1
for a in "$@"; do
  case "$a" in
    --short) short=--short ;;
    --no-build) build=0 ;;
    *) echo "usage: driver/hosted/run.sh [--short] [--no-build]" >&2; exit 2 ;;
  esac
done

need=()
command -v wine >/dev/null 2>&1 && command -v wineserver >/dev/null 2>&1 || need+=(wine64)
[ "$build" = 0 ] || dpkg -s mingw-w64-x86-64-dev libclang-dev >/dev/null 2>&1 || need+=(mingw-w64-x86-64-dev libclang-dev)
[ -n "$short" ] || command -v x86_64-w64-mingw32-gcc >/dev/null 2>&1 || need+=(gcc-mingw-w64-x86-64)
if [ "${#need[@]}" -gt 0 ]; then
  echo "hosted: installing ${need[*]} (apt-get)"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
fi
echo "hosted: $(wine --version) ($(dpkg-query -W -f='${Package} ${Version}' wine64 2>/dev/null || echo 'wine64: not from dpkg'))"

if [ "$build" = 1 ]; then
  driver/kcheck/run.sh
fi
for f in target/kcheck/failsafeflt-drill.sys target/kcheck/failsafeflt-drill.map; do
  [ -f "$f" ] || { echo "hosted: $f missing (run driver/kcheck/run.sh)" >&2; exit 1; }
done
cargo build -q --locked -p failsafectl
python3 driver/hosted/drill.py \
  --sys target/kcheck/failsafeflt-drill.sys --map target/kcheck/failsafeflt-drill.map \
  --ctl target/debug/failsafectl --sample content/sample.toml \
  --work target/hosted --json target/hosted/timeline.json $short
if [ -z "$short" ]; then
  # Dormancy (issue 20): the drill image faults in its own setup until it is dormant; the
  # release image (same sources, another build identity) is the new build.
  python3 driver/hosted/drill.py --scenario dormancy \
    --sys target/kcheck/failsafeflt-drill.sys --map target/kcheck/failsafeflt-drill.map \
    --new-sys target/kcheck/failsafeflt.sys \
    --ctl target/debug/failsafectl --sample content/sample.toml \
    --work target/hosted-dormancy --json target/hosted-dormancy/timeline.json
  mkdir -p target/hosted-live
  x86_64-w64-mingw32-gcc -O2 -Wall -Wextra -Werror -o target/hosted-live/failsafe-ioctl.exe driver/hosted/ioctl.c
  python3 driver/hosted/drill.py --scenario july-2024 \
    --sys target/kcheck/failsafeflt-drill.sys --map target/kcheck/failsafeflt-drill.map \
    --ctl target/debug/failsafectl --sample content/sample.toml \
    --ioctl target/hosted-live/failsafe-ioctl.exe \
    --work target/hosted-live/run --json target/hosted-live/timeline.json
fi
