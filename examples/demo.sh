#!/usr/bin/env bash
# The world-record example under prism-run: colour a random G(500, 0.5)
# graph (DSJC500.5-style) by tabu search; prism-run asks for a checkpoint
# every 2 s, and at the 6 s deadline asks for one more and stops the
# solver: exit 75, resumable. Then the same command line with
# --resume latest goes on from the checkpoint to the end.
set -u
cd "$(dirname "$0")/.."
bin=./bin
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

run() { echo "+ $*" >&2; "$@"; }

echo "== 1. a run that hits its deadline"
run $bin/prism-run --log-format console --timeout 6s --checkpoint-every 2s \
	--checkpoint-dir "$work/ck" --seed 7 --report "$work/run1.json" -- \
	$bin/colorer -n 500 -k-iters 100000000 -report-every 100000
code=$?
echo "== prism-run exited $code (75 = stopped by policy after a confirmed checkpoint)"
[ "$code" -eq 75 ] || { echo "demo: expected 75" >&2; exit 1; }

echo
echo "== 2. the same job, resumed from its last checkpoint, run to 3M steps"
run $bin/prism-run --log-format console --checkpoint-dir "$work/ck" --resume latest \
	--seed 7 --report "$work/run2.json" -- \
	$bin/colorer -n 500 -k-iters 100000000 -report-every 100000 -max-iters 3000000
code=$?
echo "== prism-run exited $code"
[ "$code" -eq 0 ] || exit 1

echo
echo "== run report of the first run (excerpt)"
grep -E '"(exit_code|reason|rule|message|path)"' "$work/run1.json"
