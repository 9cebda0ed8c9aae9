#!/usr/bin/env bash
# The fleet drill (docs/fleet.md, "The drill"): real `failsafectl serve` hosts with their
# own agents, Debian's nginx serving the TUF repository, Mosquitto as the report broker and
# the controller, all on 127.0.0.1. Installs nginx-light and mosquitto when missing (as
# root, non-interactively, as CI runs it), builds failsafectl and the drill, runs it.
#
#   fleet/drill/run.sh [--machines N] [--interval 2s] [--keep DIR] [--release]
#
# --release builds optimized binaries (slower to build; the agents' passes then cost a
# fraction of the CPU, which a 50-machine fleet on 2 cores needs).
set -euo pipefail
cd "$(dirname "$0")/../.."
profile=debug
args=()
while [[ $# -gt 0 ]]; do
  case "$1" in
    --release) profile=release; shift ;;
    *) args+=("$1"); shift ;;
  esac
done

need=()
[[ -x /usr/sbin/nginx || -x /usr/bin/nginx ]] || need+=(nginx-light)
[[ -x /usr/sbin/mosquitto || -x /usr/bin/mosquitto ]] || need+=(mosquitto)
if [[ ${#need[@]} -gt 0 ]]; then
  if [[ $(id -u) -ne 0 ]]; then
    echo "fleet drill: needs ${need[*]} (Debian): sudo apt-get install -y ${need[*]}" >&2
    exit 2
  fi
  apt-get update -qq
  # Packages only: the drill starts its own nginx and mosquitto on free loopback ports. A
  # policy-rc.d (only if the machine has none) keeps the distribution's services from
  # starting during the install.
  made_policy=
  if [[ ! -e /usr/sbin/policy-rc.d ]]; then
    printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d
    chmod +x /usr/sbin/policy-rc.d
    made_policy=1
  fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
  if [[ -n $made_policy ]]; then rm -f /usr/sbin/policy-rc.d; fi
fi

flag=()
[[ $profile == release ]] && flag=(--release)
cargo build -q "${flag[@]}" -p failsafectl -p failsafe-fleet --bin failsafectl --bin fleet-drill
exec "target/$profile/fleet-drill" --failsafectl "target/$profile/failsafectl" "${args[@]}"
