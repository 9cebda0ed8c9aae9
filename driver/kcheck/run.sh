#!/usr/bin/env bash
# The kernel check (`cargo make kcheck`; docs/windows.md, "The kernel check").
#
#   driver/kcheck/run.sh [--no-link]
#
# 1. Generates bindings from a header set with wdk-build 0.6's WDM settings
#    (driver/kcheck: bindgen as a library). WDK_INCLUDE names a WDK `Include/<version>`
#    directory (km/, shared/); default: MinGW-w64's headers (Debian mingw-w64-x86-64-dev).
# 2. Type-checks and lints every line of driver/ for x86_64-pc-windows-msvc against them
#    (`--cfg failsafe_kcheck`), with and without the drill feature, warnings as errors. The
#    driver crate compiles the release build's items here: only the bindings and the crate
#    that supplies the panic handler (driver/kshim for wdk-panic) differ
#    (tests/tests/kcheck_items.rs), so an unused import in release fails here too.
# 3. Unless --no-link (or no MinGW import libraries are installed): links failsafeflt.sys
#    and failsafeflt-drill.sys with rust-lld against MinGW-w64's libntoskrnl.a / libhal.a,
#    and runs tests/tests/pe.rs on both images.
#
# Proves names, types and signatures against a header set, and the shape of the image.
# Does not prove behaviour: nothing here runs kernel code.
set -euo pipefail
cd "$(dirname "$0")/../.."
link=1
[ "${1:-}" = "--no-link" ] && link=0
out=target/kcheck
include=${WDK_INCLUDE:-/usr/share/mingw-w64/include}
mingw_lib=${MINGW_LIB:-/usr/x86_64-w64-mingw32/lib}
target=x86_64-pc-windows-msvc

# What this needs (.ci/need.sh installs what is missing): clippy and the Windows target of
# the pinned toolchain; llvm-tools (llvm-nm) to list the import libraries' exports;
# libclang for bindgen; MinGW-w64's headers (the default header set) and import libraries.
source .ci/need.sh
need_component clippy
need_target "$target"
need_apt libclang-dev
if [ -z "${WDK_INCLUDE:-}" ] || [ "$link" = 1 ]; then
  need_apt mingw-w64-x86-64-dev
fi
[ "$link" = 0 ] || need_component llvm-tools
need_done
mkdir -p "$out"

# libclang for bindgen: Debian installs it under /usr/lib/llvm-N/lib.
if [ -z "${LIBCLANG_PATH:-}" ]; then
  for d in /usr/lib/llvm-*/lib; do
    [ -e "$d/libclang.so" ] || ls "$d"/libclang-*.so* >/dev/null 2>&1 || continue
    export LIBCLANG_PATH=$d
  done
fi

echo "kcheck: bindings from $include"
cargo build -q --release --locked --manifest-path driver/kcheck/Cargo.toml --target-dir "$out/tool"
name=$(basename "$(realpath "$include")")
bindings=$PWD/$out/bindings-$name.rs
"$out/tool/release/failsafe-kbind" --include "$include" --out "$bindings"

# RUSTFLAGS replaces .cargo/config.toml's target rustflags: repeat +crt-static.
flags="--cfg failsafe_kcheck -C target-feature=+crt-static"
for features in "" "--features drill"; do
  echo "kcheck: clippy -D warnings, failsafeflt ${features:-(release features)}"
  FAILSAFE_KBIND=$bindings RUSTFLAGS="$flags" \
    cargo clippy -q --locked -p failsafeflt -p failsafe-kshim $features --target $target --target-dir "$out/build" -- -D warnings
done

if [ "$link" = 0 ]; then
  echo "kcheck: type-checked against $include (no link requested)"
  exit 0
fi
if [ ! -f "$mingw_lib/libntoskrnl.a" ]; then
  echo "kcheck: $mingw_lib/libntoskrnl.a not found (apt-get install mingw-w64-x86-64-dev): not linking" >&2
  exit 1
fi

# Import libraries under the names lld-link looks for, and the export lists the PE test
# checks imports against (derived from the same import libraries: mingw-w64's .def files
# list what each module exports).
mkdir -p "$out/lib" "$out/exports"
cp "$mingw_lib/libntoskrnl.a" "$out/lib/ntoskrnl.lib"
cp "$mingw_lib/libhal.a" "$out/lib/hal.lib"
nm=$(find "$(rustc --print sysroot)" -name llvm-nm -type f | head -n 1)
[ -n "$nm" ] || { echo "kcheck: llvm-nm not found (rustup component add llvm-tools)" >&2; exit 1; }
for m in ntoskrnl.exe:libntoskrnl.a hal.dll:libhal.a; do
  "$nm" "$mingw_lib/${m#*:}" 2>/dev/null | sed -n 's/^.* I __imp_\(.*\)$/\1/p' | sort -u > "$out/exports/${m%%:*}.txt"
done
# ntoskrnl exports the MinGW import library lacks (EtwSetInformation, for the ETW
# provider): an import library from driver/kcheck/ntoskrnl-extra.def, made by llvm-ar
# acting as llvm-dlltool (it picks its mode from its name; rustup's llvm-tools has it),
# as rustc makes FLTMGR.SYS's from windows-sys's raw-dylib declarations. The names join
# the export list, each with its source in the .def file.
ar=$(dirname "$nm")/llvm-ar
ln -sf "$ar" "$out/llvm-dlltool"
"$out/llvm-dlltool" -m i386:x86-64 -d driver/kcheck/ntoskrnl-extra.def -l "$out/lib/ntoskrnl-extra.lib"
awk '/^EXPORTS/ { on = 1; next } on && /^[A-Za-z_]/ { print $1 }' driver/kcheck/ntoskrnl-extra.def >> "$out/exports/ntoskrnl.exe.txt"
sort -u -o "$out/exports/ntoskrnl.exe.txt" "$out/exports/ntoskrnl.exe.txt"

for variant in release drill; do
  features=""
  [ "$variant" = drill ] && features="--features drill"
  echo "kcheck: linking failsafeflt.sys ($variant) with rust-lld"
  FAILSAFE_KBIND=$bindings FAILSAFE_KLIB_DIR=$PWD/$out/lib RUSTFLAGS="$flags -C linker=rust-lld" \
    cargo build -q --locked -p failsafeflt $features --release --target $target --target-dir "$out/link-$variant"
  suffix=""
  [ "$variant" = drill ] && suffix="-drill"
  cp "$out/link-$variant/$target/release/failsafeflt.dll" "$out/failsafeflt$suffix.sys"
  cp "$out/link-$variant/$target/release/deps/failsafeflt.map" "$out/failsafeflt$suffix.map"
done

# The drill build again under another build identity (FAILSAFE_BUILD_NOTE goes into the
# digest, driver/build.rs): the hosted dormancy drill's "new build". Same target dir as
# the drill link, so only the driver crate recompiles.
echo "kcheck: linking failsafeflt-drill-next.sys (the drill build, another build identity)"
FAILSAFE_BUILD_NOTE=hosted-next-build FAILSAFE_KBIND=$bindings FAILSAFE_KLIB_DIR=$PWD/$out/lib \
  RUSTFLAGS="$flags -C linker=rust-lld" \
  cargo build -q --locked -p failsafeflt --features drill --release --target $target --target-dir "$out/link-drill"
cp "$out/link-drill/$target/release/failsafeflt.dll" "$out/failsafeflt-drill-next.sys"

echo "kcheck: PE checks (tests/tests/pe.rs)"
FAILSAFE_SYS=$PWD/$out/failsafeflt.sys FAILSAFE_SYS_DRILL=$PWD/$out/failsafeflt-drill.sys \
  FAILSAFE_SYS_MAP=$PWD/$out/failsafeflt.map FAILSAFE_SYS_DRILL_MAP=$PWD/$out/failsafeflt-drill.map \
  FAILSAFE_EXPORTS=$PWD/$out/exports \
  cargo test -q --locked -p failsafe-tests --test pe -- --ignored --nocapture --test-threads 1
echo "kcheck: passed against $include; images: $out/failsafeflt.sys, $out/failsafeflt-drill.sys"
