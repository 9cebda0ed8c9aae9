# Sourced by every script of the repository before it uses a tool: installs what the
# script needs on a machine that lacks it, so a newcomer's `cargo make kcheck` works on a
# fresh machine whose pinned toolchain (rust-toolchain.toml) was installed without a
# component or target. CI runs as root with no stdin (CI=true); elsewhere apt packages are
# installed with root or password-less sudo, or the exact command is printed.
#
#   need_component llvm-tools ...    rustup component add, for the pinned toolchain
#   need_target x86_64-pc-windows-msvc ...
#   need_apt mingw-w64-x86-64-dev ...
#   need_nightly                     the nightly toolchain (cargo-fuzz)
#   need_cargo_fuzz
#   need_done                        with FAILSAFE_NEEDS_ONLY=1: stop here (prepares a
#                                    machine without running the script's work)
#
# Each prints what it installs; none does anything when the need is met.

_need_rustup() {
  command -v rustup >/dev/null 2>&1 || {
    echo "need: rustup not found: install it (https://rustup.rs); rust-toolchain.toml pins the toolchain" >&2
    exit 2
  }
}

_need_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

# The pinned toolchain (rust-toolchain.toml), installed with its listed components and
# targets when it is not installed at all.
_need_toolchain() {
  local tc
  tc=$(sed -n 's/^channel *= *"\(.*\)"/\1/p' "$_need_root/rust-toolchain.toml")
  if ! rustup toolchain list 2>/dev/null | grep -q "^$tc"; then
    echo "need: rustup toolchain install $tc (rust-toolchain.toml)" >&2
    (cd "$_need_root" && rustup toolchain install >&2)
  fi
  echo "$tc"
}

need_component() {
  _need_rustup
  local tc have c
  tc=$(_need_toolchain)
  have=$(rustup component list --installed --toolchain "$tc" 2>/dev/null || true)
  for c in "$@"; do
    if ! grep -q "^$c" <<<"$have"; then
      echo "need: rustup component add $c (toolchain $tc)"
      rustup component add "$c" --toolchain "$tc"
    fi
  done
}

need_target() {
  _need_rustup
  local tc have t
  tc=$(_need_toolchain)
  have=$(rustup target list --installed --toolchain "$tc" 2>/dev/null || true)
  for t in "$@"; do
    if ! grep -qx "$t" <<<"$have"; then
      echo "need: rustup target add $t (toolchain $tc)"
      rustup target add "$t" --toolchain "$tc"
    fi
  done
}

need_apt() {
  local missing=() p
  for p in "$@"; do
    dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
  done
  [ "${#missing[@]}" -eq 0 ] && return 0
  local sudo=()
  if [ "$(id -u)" != 0 ]; then
    if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
      sudo=(sudo)
    else
      echo "need: Debian packages ${missing[*]}: run as root: apt-get install ${missing[*]}" >&2
      exit 2
    fi
  fi
  echo "need: apt-get install ${missing[*]}"
  "${sudo[@]}" apt-get update -qq
  DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq "${missing[@]}" >/dev/null
}

need_nightly() {
  _need_rustup
  if ! rustup toolchain list 2>/dev/null | grep -q '^nightly'; then
    echo "need: rustup toolchain install nightly"
    rustup toolchain install nightly --profile minimal
  fi
}

need_cargo_fuzz() {
  need_nightly
  if ! command -v cargo-fuzz >/dev/null 2>&1; then
    echo "need: cargo install cargo-fuzz"
    cargo install cargo-fuzz --locked
  fi
}

need_done() {
  if [ "${FAILSAFE_NEEDS_ONLY:-}" = 1 ]; then
    echo "need: everything installed (FAILSAFE_NEEDS_ONLY=1: stopping here)"
    exit 0
  fi
}
