# prism-run — see README.md. Every tool the targets need comes through the
# Go toolchain (pinned versions), so a fresh machine needs only Go and gcc.

GO          ?= go
STATICCHECK := honnef.co/go/tools/cmd/staticcheck@v0.8.2
GOLANGCI_LINT := github.com/golangci/golangci-lint/v2/cmd/golangci-lint@v2.15.0
GOVULNCHECK := golang.org/x/vuln/cmd/govulncheck@v1.9.0
BENCHPKGS   := ./markers ./supervisor ./replay ./probes/... ./limits
VERSION     ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
COMMIT      ?= $(shell git rev-parse --short HEAD 2>/dev/null || echo unknown)
DATE        ?= $(shell date -u +%Y-%m-%dT%H:%M:%SZ)
LDFLAGS     := -s -w -X main.version=$(VERSION) -X main.commit=$(COMMIT) -X main.date=$(DATE)
EXAMPLES    := colorer tracker ensemble
FUZZTIME    ?= 30s
# go-nvml's cgo preamble calls NVML functions its header marks deprecated;
# the warnings say nothing about this project.
export CGO_CFLAGS ?= -O2 -g -Wno-deprecated-declarations

.PHONY: all build examples test lint bench demo fuzz validate hooks clean slurm-test

all: build examples

# urfave_cli_no_docs leaves out urfave/cli's man-page and Markdown
# generators (and the Markdown library they import, whose package
# initialisation was an eighth of every prism-run start's; prism-run uses
# neither).
TAGS        ?= urfave_cli_no_docs

build:
	$(GO) build -trimpath -tags '$(TAGS)' -ldflags '$(LDFLAGS)' -o bin/prism-run .

examples:
	@mkdir -p bin
	$(GO) build -trimpath -o bin/ $(addprefix ./examples/cmd/,$(EXAMPLES))

# The whole suite with the race detector: unit, supervisor (real child
# processes) and testscript end-to-end tests.
test:
	$(GO) test -race -count=1 ./...

lint:
	$(GO) vet ./...
	$(GO) run $(STATICCHECK) ./...
	@bad=$$(gofmt -l .) || { echo "gofmt failed (a file that does not parse?)"; exit 1; }; \
		test -z "$$bad" || { echo "gofmt needed:"; echo "$$bad"; exit 1; }
	$(GO) vet -tags gpu ./probes/gpu

# The Go benchmarks, then the whole-binary figures beside their baselines
# in the same run (bench/: start, own CPU, output floods, reaction, peak
# RSS, replay), written to BENCHMARKS.md. hyperfine and tini come from
# Debian (installed here when missing and root). BENCHFLAGS=-quick for a
# short round; -gate makes a missed target fail.
BENCHFLAGS ?=
bench: build
	@command -v hyperfine >/dev/null && command -v tini >/dev/null || \
		{ test "$$(id -u)" = 0 && apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends hyperfine tini; } || \
		{ echo "make bench needs hyperfine (and tini for its baseline): apt-get install hyperfine tini"; exit 1; }
	$(GO) run ./bench -gobench '$(BENCHPKGS)' $(BENCHFLAGS)

# A real single-node Slurm runs examples/slurm/ (scripts/slurm-test.sh;
# root, ports 6817/6818 free; Debian's munge, slurmctld, slurmd,
# slurm-client and jq installed when missing): a SIGUSR1 before the time
# limit turns into a checkpoint and exit 75, a requeue and a resume to the
# uninterrupted run's result, and a time-limit kill with the report
# written. About a minute and a half, most of it waiting for the limit.
slurm-test: build examples
	bash scripts/slurm-test.sh --bin bin

# Short fuzzing rounds; FUZZTIME=10m for a long one. Each new interesting
# input is minimized for at most 1s, not go test's default minute: with the
# TOML parser instrumented, minimizing a policy-sized input took every
# second of a short round (10 executions in 15s, none new).
FUZZFLAGS = -run '^$$' -fuzztime $(FUZZTIME) -fuzzminimizetime 1s
# Every fuzz target of the project (each func FuzzX of a _test.go file),
# one after another, $(FUZZTIME) each; a crasher lands in the package's
# testdata/fuzz/FuzzX/, where plain go test then runs it for good.
fuzz:
	@set -e; for f in $$(grep -rl --include='*_test.go' --exclude-dir=testdata '^func Fuzz' . | sort); do \
		for fn in $$(sed -n 's/^func \(Fuzz[A-Za-z0-9_]*\)(.*/\1/p' $$f); do \
			echo "== $$fn $$(dirname $$f)"; \
			$(GO) test $(FUZZFLAGS) -fuzz "^$$fn\$$" $$(dirname $$f); \
		done; \
	done

# The release gate (scripts/validate.sh): formatting, vet, the house
# rules, staticcheck, golangci-lint, the missions, the whole suite with
# -race, goleak and coverage gates, the benchmarks once, a soak run for
# prism-run's own memory, the GPU tests and govulncheck where possible.
validate:
	GO=$(GO) STATICCHECK=$(STATICCHECK) GOLANGCI_LINT=$(GOLANGCI_LINT) GOVULNCHECK=$(GOVULNCHECK) \
		BENCHPKGS='$(BENCHPKGS)' TAGS='$(TAGS)' bash scripts/validate.sh

# Installs scripts/pre-commit as this clone's git pre-commit hook (gofmt
# and go vet on the staged Go files); a hook that was there is kept as
# pre-commit.bak.
hooks:
	@hooks=$$(git rev-parse --git-path hooks) && mkdir -p "$$hooks" && \
	if [ -e "$$hooks/pre-commit" ] && [ ! -L "$$hooks/pre-commit" ]; then mv "$$hooks/pre-commit" "$$hooks/pre-commit.bak"; echo "kept the old hook as $$hooks/pre-commit.bak"; fi && \
	ln -sf "$$(pwd)/scripts/pre-commit" "$$hooks/pre-commit" && echo "installed $$hooks/pre-commit -> scripts/pre-commit"

# The fault suite (testdata/chaos, TestChaos): each fault a long job meets,
# every run held to the same invariants; it prints its figures (runs,
# leftovers, bytes and violation records lost) at the end: about 75 s on 2
# cores. CHAOS_RUNS sizes the concurrent case (.ci/run: 50, about 50 s).
# No race detector by default: make test runs the same code under it, and
# here it takes two and a half times as long (2 minutes at CHAOS_RUNS=50)
# and would hold 600 race-instrumented processes at once at 200;
# CHAOSFLAGS=-race (with a smaller CHAOS_RUNS) runs it anyway.
CHAOS_RUNS ?= 200
CHAOSFLAGS ?=
.PHONY: chaos
chaos:
	@mkdir -p bin && rm -f bin/chaos.txt
	@PRISM_CHAOS=1 CHAOS_RUNS=$(CHAOS_RUNS) CHAOS_SUMMARY=$(CURDIR)/bin/chaos.txt \
		$(GO) test $(CHAOSFLAGS) -tags '$(TAGS)' -count=1 -timeout 10m -run '^TestChaos$$' . ; \
		rc=$$?; cat bin/chaos.txt 2>/dev/null; exit $$rc

# Builds everything and runs the world-record example under prism-run:
# a deadline that checkpoints and stops it (exit 75), then a resume.
demo: build examples
	./examples/demo.sh

clean:
	rm -rf bin
