# ipfix-balancer — see README.md. `make help` lists the targets.
SHELL   := /usr/bin/env bash
GO      ?= go
PKG     ?= ./...
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -s -w -X main.version=$(VERSION)
BIN     := bin
FUZZTIME ?= 8s
# Every fuzz target as package:Target, found in the test files (a hand-kept list
# named one that no longer existed, and go test fuzzes nothing without failing);
# `make fuzz` runs each for FUZZTIME.
FUZZ_TARGETS := $(shell grep -rHo --include='*_test.go' --exclude-dir=.git '^func Fuzz[A-Za-z0-9_]*' . | sed -E 's#^(.*)/[^/]*:func (Fuzz.*)#\1:\2#' | sort -u)

.PHONY: help run build test test-go fuzz bench lint deps rpm deb clean

help: ## list the targets
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-10s %s\n", $$1, $$2}'

build: ## build ipfix-balancer, ipfix-loader and ipfix-gen into bin/
	@mkdir -p $(BIN)
	$(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN)/ ./cmd/...

# A development run hands its sockets over through a control socket of its own:
# the system one (/run/ipfix-balancer/control.sock) belongs to the service, whose
# exporter sessions a run would take over. A second `make run` takes over from
# the first through it. Override: make run RUN_SOCKET=/path/to.sock
RUN_SOCKET ?= $(if $(XDG_RUNTIME_DIR),$(XDG_RUNTIME_DIR)/ipfix-balancer-dev.sock,$(CURDIR)/$(BIN)/control.sock)

run: build ## run the balancer on its embedded default config, recording into ./dump (Ctrl-C stops it)
	@echo "metrics: http://127.0.0.1:9740/metrics  —  send traffic: bin/ipfix-gen -stream fullflow -records 100000 -to tcp://127.0.0.1:1500"
	$(BIN)/ipfix-balancer -control-socket $(RUN_SOCKET)

deps: ## install what the tests need (Go modules, tshark, clickhouse-server, chromium)
	$(GO) mod download
	./scripts/install-test-deps.sh

test: deps lint ## everything CI runs: lint, all tests with -race (one package at a time: load tests share 2 cores), a bounded fuzz smoke run
	$(GO) test -race -count=1 -p 1 -timeout 20m $(PKG)
	@$(MAKE) --no-print-directory fuzz FUZZTIME=5s

fuzz: ## run every fuzz target for FUZZTIME (default 8s)
	@set -e; for t in $(FUZZ_TARGETS); do \
		pkg=$${t%%:*}; name=$${t##*:}; \
		echo "fuzz $$pkg $$name ($(FUZZTIME))"; \
		$(GO) test $$pkg -run '^$$' -fuzz "^$$name\$$" -fuzztime $(FUZZTIME) -fuzzminimizetime 2s >/tmp/fuzz.$$$$.log 2>&1 || { cat /tmp/fuzz.$$$$.log; exit 1; }; \
		! grep -q 'no fuzz tests' /tmp/fuzz.$$$$.log || { echo "fuzz: $$pkg has no $$name"; exit 1; }; \
		tail -1 /tmp/fuzz.$$$$.log; \
	done

bench: build ## micro-benchmarks and the end-to-end harness (figures go to bench/RESULTS.md by hand)
	$(GO) test -run '^$$' -bench . -benchmem -count 1 ./ipfix/... ./balancer/...
	$(GO) run ./bench -bin $(BIN)

lint: ## gofmt and go vet
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null; git ls-files -o --exclude-standard '*.go' 2>/dev/null)); \
		if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet $(PKG)

rpm: build ## build the RPM package into dist/
	./packaging/build.sh rpm

deb: build ## build the .deb package into dist/
	./packaging/build.sh deb

clean: ## remove build outputs (never ./dump: it holds recorded data)
	rm -rf $(BIN) dist
