#!/usr/bin/env bash
# The hosted drill (`cargo make hosted-drill`; docs/windows.md, "Hosted drill under Wine").
#
#   driver/hosted/run.sh [--short] [--no-build]
#
# HOSTED, NOT WINDOWS: runs the real failsafeflt.sys (the drill build that
# driver/kcheck/run.sh links) under Debian's Wine (its ntoskrnl.exe, fltmgr.sys and
# winedevice.exe, used as they are), one Wine session per boot:
#   1. scenario 1's crash loop, compared with `failsafectl drill 1`;
#   2. "July 2024": v2 pushed live through the driver's control device (IOCTLs sent by
#      driver/hosted/ioctl.c, built here with MinGW-w64), a crash, two boots that bugcheck
#      on v2, the start on v1 with v2 quarantined, v3 pushed live and healthy.
# driver/hosted/drill.py says how.
#   --short     scenario 1 only (6 boots), no July 2024; default: also ForceSafeMode, a power
#               loss, and July 2024
#   --no-build  use the images already in target/kcheck (e.g. right after the kernel check)
# Installs what it needs when missing (.ci/need.sh: wine64, python3, gcc-mingw-w64-x86-64;
# the kernel check its own).
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

# What this needs (.ci/need.sh installs what is missing): Debian's Wine, Python 3 for the
# drill, MinGW-w64's C compiler for the IOCTL client of July 2024; the kernel check
# installs its own when it builds the images here.
source .ci/need.sh
need_apt wine64 python3
[ -n "$short" ] || need_apt gcc-mingw-w64-x86-64
need_done
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
  mkdir -p target/hosted-live
  x86_64-w64-mingw32-gcc -O2 -Wall -Wextra -Werror -o target/hosted-live/failsafe-ioctl.exe driver/hosted/ioctl.c
  python3 driver/hosted/drill.py --scenario july-2024 \
    --sys target/kcheck/failsafeflt-drill.sys --map target/kcheck/failsafeflt-drill.map \
    --ctl target/debug/failsafectl --sample content/sample.toml \
    --ioctl target/hosted-live/failsafe-ioctl.exe \
    --work target/hosted-live/run --json target/hosted-live/timeline.json
fi
