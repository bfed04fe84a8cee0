#!/usr/bin/env bash
# The seed's leak check: prism-run's own memory stays flat over many
# thousand markers and many restarts. bin/prism-run supervises a child
# that prints SOAK_LINES marker lines (in 4 bursts, 0.1 s apart) and
# crashes, restarted on failure SOAK_RESTARTS times without backoff (a
# threshold rule logs every slow frame meanwhile); prism-run's VmRSS is
# sampled from /proc every 0.2 s. It fails when the median RSS of the
# last 30 % of the run is above 1.2 x that of 10-30 % plus 4 MiB, or when
# the run did not do what it was asked (exit 1 after the last crash, every
# restart and every marker in its report). About 30 s with the defaults:
# 51 attempts x 4000 = 204000 marker lines.
#   scripts/soak.sh [PRISM_RUN_BINARY]
set -euo pipefail
cd "$(dirname "$0")/.."
bin=${1:-bin/prism-run}
restarts=${SOAK_RESTARTS:-50}
lines=${SOAK_LINES:-4000}
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT

cat >"$dir/policy.toml" <<'TOML'
[recovery]
restart = "on-failure"
backoff_initial = "0s"
jitter = 0.0

[[rule]]
name = "slow-frame"
kind = "threshold"
metric = "latency_ms"
above = 5
severity = "low"
action = "log"
TOML
cat >"$dir/child.sh" <<SH
#!/bin/sh
for burst in 1 2 3 4; do
	awk -v b=\$burst 'BEGIN { for (i = 0; i < $lines / 4; i++) printf "PRISM iter=%d loss=%.6f latency_ms=%d\n", b * $lines + i, 1 / (i + 1), i % 10 }'
	sleep 0.1
done
exit 1
SH
chmod +x "$dir/child.sh"

"$bin" --policy "$dir/policy.toml" --max-restarts "$restarts" --report "$dir/report.json" --no-status \
	-- "$dir/child.sh" >/dev/null 2>"$dir/log.txt" &
pid=$!
samples=()
while kill -0 "$pid" 2>/dev/null; do
	# RssAnon: prism-run's own memory; VmRSS is mostly the executable's
	# pages (BENCHMARKS.md), which would hide a leak several times larger.
	rss=$(awk '/^RssAnon:/ { print $2 }' "/proc/$pid/status" 2>/dev/null || true)
	[ -n "$rss" ] && samples+=("$rss")
	sleep 0.2
done
rc=0
wait "$pid" || rc=$?

fail() { echo "soak: FAIL: $*"; tail -5 "$dir/log.txt"; exit 1; }
[ "$rc" -eq 1 ] || fail "prism-run exited $rc, want 1 (the last crash, restarts used up)"
want_markers=$(((restarts + 1) * lines))
grep -q "\"restarts\": $restarts," "$dir/report.json" || fail "the report does not count $restarts restarts"
grep -q "\"count\": $want_markers," "$dir/report.json" || fail "the report does not count $want_markers markers of each name"
n=${#samples[@]}
[ "$n" -ge 20 ] || fail "only $n RSS samples: the run was too short to judge"

# median FROM TO: the median of samples[FROM..TO).
median() { printf '%s\n' "${samples[@]:$1:$(($2 - $1))}" | sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }
early=$(median $((n / 10)) $((n * 3 / 10)))
late=$(median $((n * 7 / 10)) "$n")
peak=$(printf '%s\n' "${samples[@]}" | sort -n | tail -1)
limit=$((early * 6 / 5 + 1024))
echo "soak: $((restarts + 1)) attempts, $want_markers marker lines, $n RSS samples: early $((early / 1024)) MiB, late $((late / 1024)) MiB, peak $((peak / 1024)) MiB (limit for late: $((limit / 1024)) MiB)"
[ "$late" -le "$limit" ] || fail "prism-run's RSS grew from $early kB to $late kB over the run"
echo "soak: ok, flat"
