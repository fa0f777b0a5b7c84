# meshbot — build, test and run a local demo.
GO      ?= go
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -s -w -X main.version=$(VERSION)
LIBS    := ./mesh/... ./kvsync/... ./bot/... ./cmd/...

.PHONY: all build test test-unit test-e2e bench lint demo chaos image clean

all: lint build test

## build: static binaries bin/meshbot and bin/meshctl
build:
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o bin/ ./cmd/meshbot ./cmd/meshctl

## test: unit and in-process tests with -race, then e2e tests against ngircd
test: test-unit test-e2e

test-unit:
	$(GO) test -race -count=1 -timeout 8m $(LIBS)

test-e2e:
	$(GO) test -count=1 -timeout 10m ./e2e/...

## bench: Go benchmarks of every package (figures go to BENCHMARKS.md)
bench:
	$(GO) test -run '^$$' -bench . -benchmem $(LIBS)

## lint: gofmt and go vet
lint:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	if [ -n "$$out" ]; then echo "gofmt needed on:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...

## demo: a local 3-node mesh with an IRC server (Ctrl-C stops and cleans up)
demo: build
	./deploy/demo.sh

## chaos: failover suite on Docker containers (FROM scratch images)
chaos: build
	$(GO) test -count=1 -timeout 15m -tags chaos -v -run 'TestChaos|TestCompose' ./e2e/...

## image: the FROM scratch container image meshbot:latest
image: build
	cp /etc/ssl/certs/ca-certificates.crt bin/ca-certificates.crt
	docker build -t meshbot:latest -f deploy/Dockerfile .

clean:
	rm -rf bin/
