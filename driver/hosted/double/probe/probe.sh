#!/usr/bin/env bash
# Computes, with clang, the WDK's offsets, sizes and constants that the Filter Manager
# double asserts at compile time (src/layout.rs), from a real WDK header set:
#
#   driver/hosted/double/probe/probe.sh WDK_INCLUDE SDK_SHARED [CLANG]
#
# WDK_INCLUDE: a WDK `Include/<version>` directory (km/, km/crt/, shared/), e.g. from the
# public mirror T-RN-R/ddk_headers; SDK_SHARED: the SDK's `shared/` of the same version
# (T-RN-R/WindowsPreviewSDKs). Prints `name value` lines. Not run by CI (no WDK there);
# the values it printed are in src/layout.rs with the header version named. Never commit
# the headers or anything generated from them besides those numbers.
set -euo pipefail
inc=${1:?WDK include directory}; sdk=${2:?SDK shared directory}; clang=${3:-clang-14}
here=$(cd "$(dirname "$0")" && pwd)
work=$(mktemp -d); trap 'rm -rf "$work"' EXIT
# The WDK is written for case-insensitive file systems: symlinks for names included in
# another case than the file's (as driver/kcheck does).
python3 - "$work/fix" "$inc/km" "$inc/km/crt" "$inc/shared" "$sdk" <<'PY'
import os, re, sys
out, dirs = sys.argv[1], sys.argv[2:]
os.makedirs(out)
have, exact, names = {}, set(), set()
inc = re.compile(r'^\s*#\s*include\s*[<"]([^>"/\\]+)[>"]')
for d in dirs:
    for n in os.listdir(d):
        p = os.path.join(d, n)
        have.setdefault(n.lower(), os.path.abspath(p)); exact.add(n)
        if os.path.isfile(p):
            for line in open(p, 'rb').read().decode('latin1').splitlines():
                m = inc.match(line)
                if m: names.add(m.group(1))
for n in names:
    if n not in exact and n.lower() in have:
        os.symlink(have[n.lower()], os.path.join(out, n))
PY
"$clang" --target=x86_64-pc-windows-msvc19.30.0 -fms-extensions -fms-compatibility \
  -fms-compatibility-version=19.30 -D_AMD64_ -DAMD64 -D_WIN64 -D_KERNEL_MODE \
  -DNTDDI_VERSION=0x0A00000C -I "$work/fix" -I "$inc/km" -I "$inc/km/crt" -I "$inc/shared" \
  -I "$sdk" -w -S -emit-llvm -o "$work/probe.ll" "$here/probe.c"
sed -nE 's/^@([osv]__[A-Za-z0-9_]+) = .*global i64 (-?[0-9]+).*/\1 \2/p' "$work/probe.ll"
