#!/usr/bin/env bash
# The model check must catch a planted mutation (docs/testing.md, "It bites"): one line of
# the start sequence removed — in `machine::begin_in`, `s.attempt = None;` after the
# previous start's unclean end is charged, so the same end would be charged again at the
# next start. Builds the mutant in place (the file is restored on exit, with a new mtime so
# the next build compiles the real code again), runs the complete search in release, and
# fails unless the search fails on one of the design's invariants.
#
#   loader/tests/model-mutant.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
f=loader/src/state/machine.rs
backup=$(mktemp)
cp "$f" "$backup"
restore() { cp "$backup" "$f"; rm -f "$backup"; }
trap restore EXIT
python3 - "$f" <<'PY'
import sys
p = sys.argv[1]
s = open(p).read()
line = "    s.attempt = None;\n    let boot = s.boot;\n"
if s.count(line) != 1:
    sys.exit("model-mutant: the planted line is not in machine.rs exactly once; update this script")
open(p, "w").write(s.replace(line, "    let boot = s.boot;\n"))
PY
log=$(mktemp)
start=$SECONDS
if cargo test -q -p failsafe-loader --release --test model complete_state_space -- --nocapture >"$log" 2>&1; then
  tail -n 5 "$log"
  echo "model-mutant: FAILED: the search passed on the mutant (a line of the start sequence removed)"
  exit 1
fi
if ! grep -q "panicked at loader/tests/model.rs" "$log"; then
  tail -n 30 "$log"
  echo "model-mutant: FAILED: the mutant's run failed, but not on an invariant of the search"
  exit 1
fi
grep -E "^every event depth|panicked at" "$log" | tail -n 3
grep -A1 "panicked at loader/tests/model.rs" "$log" | tail -n 1
echo "model-mutant: the search caught the mutant ($((SECONDS - start)) s, build included)"
