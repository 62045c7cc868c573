# sztp-agent — see README.md. `make help` lists the targets.

GO       ?= go
VERSION  ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
BUILT    := $(shell date -u +%Y-%m-%dT%H:%M:%SZ)
PKG      := github.com/sztp-agent/sztp-agent
LDFLAGS  := -s -w -X $(PKG)/internal/version.Version=$(VERSION) -X $(PKG)/internal/version.BuildTime=$(BUILT)
BIN      := bin
LABDIR   := lab-run
LABADDR  ?= 127.0.0.1:8443

export CGO_ENABLED ?= 0

.PHONY: all build test lab bench fuzz-short fmt vet clean help

all: build ## build both binaries

build: ## build bin/sztp-agent (static, CGO_ENABLED=0) and bin/sztp-lab
	$(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN)/sztp-agent ./cmd/sztp-agent
	$(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN)/sztp-lab ./cmd/sztp-lab

test: ## run every test (vet, gofmt, go mod verify, race-enabled tests, static-build check)
	@echo "== go mod verify"; $(GO) mod verify
	@echo "== gofmt"; out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	  if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	@echo "== go vet"; $(GO) vet ./...
	@echo "== dependency direction"; tools/check-deps.sh
	@echo "== static build"; $(MAKE) --no-print-directory build
	@if ldd $(BIN)/sztp-agent >/dev/null 2>&1; then echo "sztp-agent is not statically linked"; exit 1; fi
	@echo "== go test -race"; CGO_ENABLED=1 $(GO) test -race -count=1 -timeout 15m ./...

lab: build ## start the lab bootstrap server, dry-run the agent against it, show progress and plan
	@tools/lab.sh $(BIN) $(LABDIR) $(LABADDR)

bench: ## benchmarks, as ratios against references measured in the same run
	$(GO) test -run '^$$' -bench . -benchmem -count 3 ./image/

fuzz-short: ## run every fuzz target for 20s each
	@tools/fuzz-short.sh 20s

fmt: ## gofmt the tree
	gofmt -w $$(git ls-files '*.go')

clean: ## remove build and lab output
	rm -rf $(BIN) $(LABDIR)

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed 's/:.*## /\t/' | expand -t 14
