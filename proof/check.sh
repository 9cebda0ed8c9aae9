#!/usr/bin/env bash
# Builds the panic-freedom proof for each target and fails if any build references the
# panic handler's undefined symbol. Usage: proof/check.sh [TARGET...]
set -euo pipefail
cd "$(dirname "$0")"
# What this needs (.ci/need.sh installs what is missing): llvm-tools (llvm-nm) and the
# targets it builds for.
source ../.ci/need.sh
host=$(rustc -vV | sed -n 's/^host: //p')
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=("$host" x86_64-pc-windows-msvc aarch64-pc-windows-msvc)
need_component llvm-tools
need_target "${targets[@]}"
need_done
nm="$(rustc --print sysroot)/lib/rustlib/$host/bin/llvm-nm"
[ -x "$nm" ] || { echo "llvm-nm not found: rustup component add llvm-tools" >&2; exit 2; }
fail=0
for t in "${targets[@]}"; do
  cargo build --release --quiet --target "$t"
  lib=target/"$t"/release/libfailsafe_nopanic.a
  [ -f "$lib" ] || lib=target/"$t"/release/failsafe_nopanic.lib
  syms=$("$nm" "$lib" 2>/dev/null)
  exported=$(grep -cE ' T fs_' <<<"$syms" || true)
  if [ "$exported" -lt 13 ]; then
    echo "FAIL $t: expected 13 exported entry points, found $exported (did LTO drop them?)"
    fail=1
  elif grep -qE ' U failsafe_reachable_panic$' <<<"$syms"; then
    echo "FAIL $t: a panic is reachable from the core's entry points ($lib)"
    fail=1
  else
    echo "ok   $t: no reachable panic in $exported exported entry points"
  fi
done
exit $fail
