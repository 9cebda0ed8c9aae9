#!/usr/bin/env bash
# The hosted drill (`cargo make hosted-drill`; docs/windows.md, "Hosted drill under Wine").
#
#   driver/hosted/run.sh [--short] [--no-build] [--double-only]
#
# HOSTED, NOT WINDOWS: runs the real failsafeflt.sys (the drill build that
# driver/kcheck/run.sh links) under Debian's Wine (its ntoskrnl.exe, fltmgr.sys and
# winedevice.exe, used as they are), one Wine session per boot:
#   1. scenario 1's crash loop, compared with `failsafectl drill 1`;
#   2. dormancy: the drill image faulting in its own setup (DrillSetupFault) goes dormant
#      after 3 bugchecks; the release image, another build, runs again;
#   3. "July 2024": v2 pushed live through the driver's control device (IOCTLs sent by
#      driver/hosted/ioctl.c, built here with MinGW-w64), a crash, two boots that bugcheck
#      on v2, the start on v1 with v2 quarantined, v3 pushed live and healthy;
#   4. the store behind a link (issue 19, finding 4): ContentDirectory replaced by a link to
#      a planted copy whose canary.tmp links to a file outside; the driver must refuse it
#      with its line naming the link, write nothing through it, and the file must survive
#      (the image before the fix started there and its canary deleted the file).
# driver/hosted/boot/ says how (drill.py is its entry). Then, with Wine's fltmgr.sys replaced by a TEST DOUBLE of
# Filter Manager (driver/hosted/double: built here, loaded with WINEDLLOVERRIDES=fltmgr.sys=n):
#   5. the double checked with its own self-test filter (driver/hosted/double/selftest),
#      then the driver's file-system half: instances, verdict parity with failsafectl test,
#      paths, DOS names, hostile inputs, live swaps under load, unload with operations in
#      flight and reload, and the review findings' scenarios (driver/hosted/double/run.py).
#   --short        scenario 1 only (6 boots), no dormancy, no July 2024, no reparse, no double;
#                  default: also ForceSafeMode, a power loss, dormancy, July 2024, the store
#                  behind a link and the double's scenarios
#   --no-build     use the images already in target/kcheck (e.g. right after the kernel check)
#   --double-only  the double's scenarios only
# Installs what it needs when missing (.ci/need.sh: wine64, python3, MinGW-w64's compiler
# and headers, the Windows target and clippy for the double; the kernel check its own).
# Logs and the Wine prefix stay in target/hosted (never committed).
set -euo pipefail
cd "$(dirname "$0")/../.."
short=""
build=1
double_only=0
for a in "$@"; do
  case "$a" in
    --short) short=--short ;;
    --no-build) build=0 ;;
    --double-only) double_only=1 ;;
    *) echo "usage: driver/hosted/run.sh [--short] [--no-build] [--double-only]" >&2; exit 2 ;;
  esac
done

# What this needs (.ci/need.sh installs what is missing): Debian's Wine, Python 3 for the
# drill; for July 2024 and the double, MinGW-w64's C compiler and headers (the IOCTL and
# double clients) and the driver's target with clippy (the double is checked and built for
# it); the kernel check installs its own when it builds the images here.
source .ci/need.sh
need_apt wine64 python3
if [ -z "$short" ]; then
  need_apt gcc-mingw-w64-x86-64 mingw-w64-x86-64-dev
  need_component clippy
  need_target x86_64-pc-windows-msvc
fi
need_done
echo "hosted: $(wine --version) ($(dpkg-query -W -f='${Package} ${Version}' wine64 2>/dev/null || echo 'wine64: not from dpkg'))"

if [ "$build" = 1 ]; then
  driver/kcheck/run.sh
fi
for f in target/kcheck/failsafeflt-drill.sys target/kcheck/failsafeflt-drill.map target/kcheck/failsafeflt-drill-next.sys; do
  [ -f "$f" ] || { echo "hosted: $f missing (run driver/kcheck/run.sh)" >&2; exit 1; }
done
cargo build -q --locked -p failsafectl
if [ "$double_only" = 0 ]; then
python3 driver/hosted/drill.py \
  --sys target/kcheck/failsafeflt-drill.sys --map target/kcheck/failsafeflt-drill.map \
  --ctl target/debug/failsafectl --sample content/sample.toml \
  --work target/hosted --json target/hosted/timeline.json $short
if [ -z "$short" ]; then
  # Dormancy (issue 20): the drill image faults in its own setup until it is dormant; the
  # drill image linked under another build identity (FAILSAFE_BUILD_NOTE, by the kernel
  # check) is the new build. Not the release image: it refuses a store whose owner is not
  # SYSTEM or Administrators, and Wine reports every file as the user's.
  python3 driver/hosted/drill.py --scenario dormancy \
    --sys target/kcheck/failsafeflt-drill.sys --map target/kcheck/failsafeflt-drill.map \
    --new-sys target/kcheck/failsafeflt-drill-next.sys \
    --ctl target/debug/failsafectl --sample content/sample.toml \
    --work target/hosted-dormancy --json target/hosted-dormancy/timeline.json
  mkdir -p target/hosted-live
  x86_64-w64-mingw32-gcc -O2 -Wall -Wextra -Werror -o target/hosted-live/failsafe-ioctl.exe driver/hosted/ioctl.c
  python3 driver/hosted/drill.py --scenario july-2024 \
    --sys target/kcheck/failsafeflt-drill.sys --map target/kcheck/failsafeflt-drill.map \
    --ctl target/debug/failsafectl --sample content/sample.toml \
    --ioctl target/hosted-live/failsafe-ioctl.exe \
    --work target/hosted-live/run --json target/hosted-live/timeline.json
  # The store behind a link (issue 19, finding 4): a fresh prefix and two boots, ~60 s.
  python3 driver/hosted/drill.py --scenario reparse \
    --sys target/kcheck/failsafeflt-drill.sys --map target/kcheck/failsafeflt-drill.map \
    --ctl target/debug/failsafectl --sample content/sample.toml \
    --work target/hosted-reparse --json target/hosted-reparse/timeline.json
fi
fi
[ -n "$short" ] && exit 0

# 5. The Filter Manager test double: clippy-clean for the driver's target, linked like the
# driver (rust-lld, MinGW's import libraries that the kernel check copied), its client, and
# the engine's own cost on the same events (release build, as `cargo bench`).
mkdir -p target/hosted-double
t0=$SECONDS
echo "hosted: building the Filter Manager test double (fltmgr.sys), its self-test filter and its client"
RUSTFLAGS="-C target-feature=+crt-static" \
  cargo clippy -q --locked -p failsafe-fltdouble -p failsafe-fltdouble-selftest --lib \
  --target x86_64-pc-windows-msvc --target-dir target/kcheck/double -- -D warnings
FAILSAFE_KLIB_DIR=$PWD/target/kcheck/lib RUSTFLAGS="-C target-feature=+crt-static -C linker=rust-lld" \
  cargo build -q --locked -p failsafe-fltdouble -p failsafe-fltdouble-selftest --lib --release \
  --target x86_64-pc-windows-msvc --target-dir target/kcheck/double
x86_64-w64-mingw32-gcc -O2 -Wall -Wextra -Werror -o target/hosted-double/double-client.exe driver/hosted/double/client.c
x86_64-w64-mingw32-gcc -O2 -Wall -Wextra -Werror -o target/hosted-double/failsafe-ioctl.exe driver/hosted/ioctl.c
cargo build -q --locked --release -p failsafe-fltdouble --bin engine-cost
echo "hosted: double, self-test filter, client and engine-cost built in $((SECONDS - t0)) s"
t0=$SECONDS
python3 driver/hosted/double/run.py \
  --sys target/kcheck/failsafeflt-drill.sys --map target/kcheck/failsafeflt-drill.map \
  --double target/kcheck/double/x86_64-pc-windows-msvc/release/fltmgr.dll \
  --selftest target/kcheck/double/x86_64-pc-windows-msvc/release/fltselftest.dll \
  --client target/hosted-double/double-client.exe --ioctl target/hosted-double/failsafe-ioctl.exe \
  --ctl target/debug/failsafectl --engine-cost target/release/engine-cost --sample content/sample.toml \
  --work target/hosted-double/run --json target/hosted-double/report.json
echo "hosted: the double's scenarios ran in $((SECONDS - t0)) s"
