# The two set-up commands (README): `make run` and `make test`.
GO     ?= go
BIN    := bin/kommo-summarizer
CONFIG ?= $(wildcard config.yaml)
export CGO_ENABLED = 0

.PHONY: run test bench build vet clean release-check

build:
	$(GO) build -trimpath -o $(BIN) ./cmd/kommo-summarizer

# A real sweep when Kommo is configured (config.yaml, CONFIG=..., or the
# KOMMO_SUMMARIZER_KOMMO_BASE_URL env var); otherwise a demo sweep against the
# built-in fakes.
run: build
	@if [ -n "$(CONFIG)" ]; then ./$(BIN) sweep --config $(CONFIG); \
	elif [ -n "$$KOMMO_SUMMARIZER_KOMMO_BASE_URL" ]; then ./$(BIN) sweep; \
	else ./$(BIN) demo; fi

test: vet
	$(GO) test -count=1 -timeout 14m ./...

vet:
	$(GO) vet ./...

# Sweeps of 60 and 1,000 leads against the fakes with real latency and Kommo's
# 7 requests/s, peak memory at 300 and 3,000 leads, a sweep of 1,000 leads from
# the message log, serve's webhook latency and ingest rate, and the quality
# targets of `eval` against the fake LLM; about 16 minutes.
# BENCH='Sweep/60' runs only the 60-lead one.
BENCH ?= (Sweep|ServeWebhooks|Eval)
bench:
	$(GO) test -run '^$$' -bench 'Benchmark$(BENCH)' -benchtime 1x -timeout 40m ./cmd/kommo-summarizer/

release-check:
	goreleaser check

clean:
	rm -rf bin dist
