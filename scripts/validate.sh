#!/usr/bin/env bash
# make validate: the one gate a release goes through. Each step is
# printed with its time; the first that fails ends the gate (exit 1).
# The tools come through the Go toolchain at the versions the Makefile
# pins (STATICCHECK, GOLANGCI_LINT, GOVULNCHECK), so a fresh machine needs
# only Go and gcc. About 8 minutes on 2 cores, most of it the test suite,
# run twice: with the race detector, then with coverage (the first run on
# a machine also builds golangci-lint: a few minutes more).
set -uo pipefail
cd "$(dirname "$0")/.."
GO=${GO:-go}
: "${STATICCHECK:?set by the Makefile}" "${GOLANGCI_LINT:?set by the Makefile}" "${GOVULNCHECK:?set by the Makefile}"
BENCHPKGS=${BENCHPKGS:-./markers ./supervisor ./replay ./probes/... ./limits}
COVER_TOTAL=${COVER_TOTAL:-80} # % of all statements, every test counted
COVER_PURE=${COVER_PURE:-95}   # % of the pure packages, by their own tests
PURE="policies markers"
export CGO_CFLAGS=${CGO_CFLAGS:--O2 -g -Wno-deprecated-declarations}
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
bin=$out/prism-run

n=0
summary=()
step() { # step TITLE FUNCTION: run it, say how it went and how long it took
	local title=$1 start=$SECONDS
	n=$((n + 1))
	echo
	echo "==> [$n] $title"
	if ! "$2"; then
		echo "==> FAILED: [$n] $title ($((SECONDS - start))s)"
		printf '%s\n' "${summary[@]}"
		exit 1
	fi
	summary+=("  ok  [$n] $title ($((SECONDS - start))s)")
	echo "--> ok ($((SECONDS - start))s)"
}

gofmt_clean() {
	local bad
	bad=$(gofmt -l .) || { echo "gofmt failed (a file that does not parse?)"; return 1; }
	[ -z "$bad" ] || { echo "gofmt needed:"; echo "$bad"; return 1; }
}
vet() { $GO vet ./...; }
house_rules() { # fast, and named: the layers, function length, docs, no unsafe, the lint config's mirror
	$GO test -count=1 -run '^(TestLayers|TestRootHoldsMainOnly|TestFunctionLength|TestDocComments|TestUndocumentedFinds|TestNoUnsafe|TestGolangciMirrorsLayers)$' .
}
staticcheck() { $GO run "$STATICCHECK" ./...; }
golangci() { $GO run "$GOLANGCI_LINT" run ./...; }
build() { $GO build -trimpath -tags "${TAGS:-}" -o "$bin" . && "$bin" version; } # as make build does

missions() { # prism-run check of every built-in mission, as printed by prism-run missions
	local names m
	names=$("$bin" missions | awk '{ print $1 }') || return 1
	[ -n "$names" ] || { echo "no missions listed"; return 1; }
	for m in $names; do
		"$bin" missions "$m" >"$out/$m.toml" || return 1
		"$bin" check "$out/$m.toml" || { echo "mission $m does not pass prism-run check"; return 1; }
	done
}

tests() { # the whole suite (make test): the race detector, and goleak in every package's TestMain
	$GO test -race -count=1 ./...
}

# at_least WHAT PERCENT MIN: say it, and fail below MIN.
at_least() {
	echo "  $1: $2% (at least $3%)"
	awk -v got="$2" -v min="$3" 'BEGIN { exit !(got + 0 >= min + 0) }' || { echo "  $1 is below $3%"; return 1; }
}

# coverage: the suite again, every package's coverage by every test (the
# end-to-end scripts' prism-run processes included), without -race: with
# it the counters are atomic, and the CPU-bound example children (the
# colorer of restart.txtar) ran out of time.
coverage() {
	local total p pct ok=0
	if ! $GO test -count=1 -coverpkg=./... -coverprofile="$out/cover.out" ./... >"$out/cover.log" 2>&1; then
		grep -E -B2 -A30 '^(--- FAIL|FAIL|panic)' "$out/cover.log" | head -200
		return 1
	fi
	total=$($GO tool cover -func="$out/cover.out" | awk '/^total:/ { sub("%", "", $3); print $3 }')
	at_least "all packages, every test" "$total" "$COVER_TOTAL" || ok=1
	for p in $PURE; do
		$GO test -count=1 -coverprofile="$out/$p.out" "./$p" >/dev/null || return 1
		pct=$($GO tool cover -func="$out/$p.out" | awk '/^total:/ { sub("%", "", $3); print $3 }')
		at_least "$p (pure), its own tests" "$pct" "$COVER_PURE" || ok=1
	done
	return $ok
}

bench_smoke() { # every benchmark once: they still run and still hold their own checks
	# shellcheck disable=SC2086 # a list of packages
	$GO test -count=1 -run '^$' -bench . -benchtime 1x $BENCHPKGS
}

soak() { bash scripts/soak.sh "$bin"; }

gpu() {
	if ! command -v nvidia-smi >/dev/null 2>&1 || ! nvidia-smi -L >/dev/null 2>&1; then
		echo "  skipped: no GPU here (nvidia-smi -L fails); on a GPU machine this runs go test -tags gpu ./probes/gpu (scripts/gpu-check.sh does more)"
		return 0
	fi
	nvidia-smi -L
	$GO test -count=1 -tags gpu ./probes/gpu
}

vulncheck() {
	if ! timeout 5 bash -c 'exec 3<>/dev/tcp/vuln.go.dev/443' 2>/dev/null; then
		echo "  skipped: the vulnerability database (vuln.go.dev) cannot be reached from here"
		return 0
	fi
	timeout 600 $GO run "$GOVULNCHECK" ./...
}

start=$SECONDS
step "gofmt" gofmt_clean
step "go vet" vet
step "house rules (layers, function length, doc comments, no unsafe, lint mirror)" house_rules
step "staticcheck ($STATICCHECK)" staticcheck
step "golangci-lint ($GOLANGCI_LINT, .golangci.yml)" golangci
step "build prism-run" build
step "prism-run check of every built-in mission" missions
step "tests: the whole suite with -race and goleak" tests
step "coverage: the suite again with coverage; all >= $COVER_TOTAL%, $PURE >= $COVER_PURE%" coverage
step "benchmarks, once each ($BENCHPKGS)" bench_smoke
step "soak: prism-run's memory over many markers and restarts" soak
step "GPU tests (real NVML)" gpu
step "govulncheck ($GOVULNCHECK)" vulncheck
echo
printf '%s\n' "${summary[@]}"
echo "validate: all $n steps passed in $((SECONDS - start))s"
