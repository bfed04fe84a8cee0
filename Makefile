# prism-run — see README.md. Every tool the targets need comes through the
# Go toolchain (pinned versions), so a fresh machine needs only Go and gcc.

GO          ?= go
STATICCHECK := honnef.co/go/tools/cmd/staticcheck@v0.8.2
VERSION     ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
COMMIT      ?= $(shell git rev-parse --short HEAD 2>/dev/null || echo unknown)
DATE        ?= $(shell date -u +%Y-%m-%dT%H:%M:%SZ)
LDFLAGS     := -s -w -X main.version=$(VERSION) -X main.commit=$(COMMIT) -X main.date=$(DATE)
EXAMPLES    := colorer tracker ensemble
FUZZTIME    ?= 30s
# go-nvml's cgo preamble calls NVML functions its header marks deprecated;
# the warnings say nothing about this project.
export CGO_CFLAGS ?= -O2 -g -Wno-deprecated-declarations

.PHONY: all build examples test lint bench demo fuzz clean

all: build examples

build:
	$(GO) build -trimpath -ldflags '$(LDFLAGS)' -o bin/prism-run .

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
	@test -z "$$(gofmt -l .)" || { echo "gofmt needed:"; gofmt -l .; exit 1; }

bench:
	$(GO) test -run '^$$' -bench . -benchmem ./markers ./supervisor ./replay ./probes/... ./limits

# Short fuzzing rounds; FUZZTIME=10m for a long one. Each new interesting
# input is minimized for at most 1s, not go test's default minute: with the
# TOML parser instrumented, minimizing a policy-sized input took every
# second of a short round (10 executions in 15s, none new).
FUZZFLAGS = -run '^$$' -fuzztime $(FUZZTIME) -fuzzminimizetime 1s
fuzz:
	$(GO) test $(FUZZFLAGS) -fuzz '^FuzzParse$$' ./markers
	$(GO) test $(FUZZFLAGS) -fuzz '^FuzzStream$$' ./markers
	$(GO) test $(FUZZFLAGS) -fuzz '^FuzzParse$$' ./policies

# Builds everything and runs the world-record example under prism-run:
# a deadline that checkpoints and stops it (exit 75), then a resume.
demo: build examples
	./examples/demo.sh

clean:
	rm -rf bin
