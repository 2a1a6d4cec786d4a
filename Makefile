# Kiln: the two commands are `make run` and `make test`.
GO        ?= go
BIN       := bin/kiln
VERSION   ?= $(shell git describe --always --dirty 2>/dev/null || echo dev)
LDFLAGS   := -s -w -X main.version=$(VERSION)
# Benchmarks: one pass each by default; BENCHTIME=5s for steadier figures.
BENCHTIME ?= 1x
BENCHCOUNT ?= 1
# Which benchmarks and packages: e.g. make bench BENCH=Ingest PKG=./cmd/kiln
BENCH ?= .
PKG ?= ./...

.PHONY: run build test vet fmt bench clean

build:
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN) ./cmd/kiln

# Builds and starts the server on http://localhost:8080, data under ./data.
# Development mode: authorization is off (--auth=none), so do not expose
# this port; `bin/kiln serve` without --auth runs SMART authorization.
run: build
	$(BIN) serve --addr :8080 --data ./data --auth=none

# Every test: vet, formatting, then the whole suite, then the Parquet
# export read by DuckDB (conformance/parquetsql: a module of its own, so
# that DuckDB, cgo and large, never enters the kiln binary; its first
# build compiles DuckDB in, about a minute).
test: vet
	@unformatted=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	  if [ -n "$$unformatted" ]; then echo "gofmt needed: $$unformatted"; exit 1; fi
	$(GO) test -count=1 -timeout 40m ./...
	cd conformance/parquetsql && CGO_ENABLED=1 $(GO) test -count=1 -timeout 10m ./...

vet:
	$(GO) vet ./...
	cd conformance/parquetsql && CGO_ENABLED=1 $(GO) vet ./...

fmt:
	gofmt -w $$(git ls-files '*.go')

# Benchmarks against baselines measured in the same run; see README.
bench:
	$(GO) test -run '^$$' -bench '$(BENCH)' -benchtime $(BENCHTIME) -count $(BENCHCOUNT) -timeout 150m $(PKG)

clean:
	rm -rf bin
