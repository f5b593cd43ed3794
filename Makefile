# The two set-up commands (README): `make run` and `make test`.
GO     ?= go
BIN    := bin/kommo-summarizer
CONFIG ?= $(wildcard config.yaml)
export CGO_ENABLED = 0

# What --version prints (pkg/cli/version.go); goreleaser stamps the same.
PKG     := github.com/kommo-summarizer/kommo-summarizer/pkg/cli
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
COMMIT  ?= $(shell git rev-parse HEAD 2>/dev/null || echo none)
DATE    ?= $(shell date -u +%Y-%m-%dT%H:%M:%SZ)
LDFLAGS := -X $(PKG).version=$(VERSION) -X $(PKG).commit=$(COMMIT) -X $(PKG).date=$(DATE)

.PHONY: run test bench build vet clean release-check eval

build:
	$(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN) ./cmd/kommo-summarizer

# A real sweep when Kommo is configured (config.yaml, CONFIG=..., or the
# KOMMO_SUMMARIZER_KOMMO_BASE_URL env var); otherwise a demo sweep against the
# built-in fakes.
run: build
	@if [ -n "$(CONFIG)" ]; then ./$(BIN) sweep --config $(CONFIG); \
	elif [ -n "$$KOMMO_SUMMARIZER_KOMMO_BASE_URL" ]; then ./$(BIN) sweep; \
	else ./$(BIN) demo; fi

# The test binaries are built with every core, then run one package at a
# time: the pacing tests count requests per second on the fakes' clock, and
# other packages' tests on the same two cores would only add jitter.
test: vet
	$(GO) test -count=1 -run '^$$' ./... >/dev/null
	$(GO) test -count=1 -p 1 -timeout 14m ./...

vet:
	$(GO) vet ./...

# Sweeps of 60 and 1,000 leads against the fakes with real latency and Kommo's
# 7 requests/s, peak memory at 300 and 3,000 leads, a sweep of 1,000 leads from
# the message log, serve's webhook latency and ingest rate, the quality targets
# of `eval` against the fake LLM, and the change feed (BenchmarkSweepChanges:
# an unchanged and a 1%-changed sweep at 1,000 and 10,000 leads, after a full
# pass that sets the account up); about 30 minutes.
# BENCH='Sweep/60' runs only the 60-lead one, BENCH=SweepChanges the feed's.
BENCH ?= (Sweep|ServeWebhooks|Eval)
bench:
	$(GO) test -run '^$$' -bench 'Benchmark$(BENCH)' -benchtime 1x -timeout 60m ./cmd/kommo-summarizer/

# eval against the fake LLM, as CI runs it, with the table printed. Against a
# real model: ./bin/kommo-summarizer eval --config config.yaml (or --model,
# --base-url); see README "Measuring quality".
eval:
	$(GO) test -count=1 -run TestEvalAgainstTheFakeLLM -v ./cmd/kommo-summarizer/

release-check:
	goreleaser check

clean:
	rm -rf bin dist
