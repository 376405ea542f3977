# escfs: Pulumi ESC environments as a live, read-only filesystem.
GO      ?= go
BIN     ?= bin/escfs
DIR     ?= examples
MNT     ?= /tmp/escfs
STACKS  ?= $(CURDIR)/examples/stacks
FUZZTIME ?= 60s
BENCHTIME ?= 1s

.PHONY: build test e2e torture bench fuzz lint run unmount clean

build: ## build bin/escfs
	$(GO) build -o $(BIN) ./cmd/escfs

test: ## vet, then every test with the race detector (fuzz seeds included; builds the AWS emulator once)
	$(GO) vet ./...
	ESCFS_KUMO=$$(bash .ci/build-kumo) $(GO) test -race -count=1 -timeout 20m ./...

e2e: ## end-to-end tests against real services on 127.0.0.1 (etcd + kube-apiserver; builds kube-apiserver once, ~8 min)
	ESCFS_KUBE_APISERVER=$$(bash .ci/build-kube-apiserver) ESCFS_KUMO=$$(bash .ci/build-kumo) $(GO) test -tags e2e -count=1 -timeout 30m ./e2e/...

torture: ## torture suite against the real binary (hostile definitions, layouts, edit races, lifecycle, secret probes, the attacks of a colleague without keys); prints a table; needs root and /dev/fuse (~1 min)
	cd torture && $(GO) test -tags torture -count=1 -timeout 10m

# The fs benchmarks take a fixed number of samples per iteration (percentiles
# need them; see fs/bench_test.go), so they run once (-benchtime 1x); the
# others use Go's usual time-based b.N. One package at a time (-p 1), so no
# benchmark shares the CPUs with another's; under a minute on 2 cores once built.
bench: ## benchmarks, each reporting a ratio against a baseline measured in the same run (≤ 5 min)
	$(GO) test -run '^$$' -bench . -benchtime 1x -timeout 4m ./fs
	ESCFS_KUMO=$$(bash .ci/build-kumo) $(GO) test -p 1 -run '^$$' -bench . -benchtime $(BENCHTIME) -timeout 4m $$($(GO) list ./... | grep -v '/fs$$')

# Every Fuzz function of the module, one after the other (go test -fuzz takes one
# target at a time): the quoting of env and dotenv, the secrets envelope and
# rule patterns, and yamledit's parsing and byte-preserving edits.
fuzz: ## longer fuzzing of everything that quotes or parses (FUZZTIME each, every Fuzz target)
	@set -e; for pkg in $$($(GO) list ./...); do \
	  dir=$$($(GO) list -f '{{.Dir}}' $$pkg); \
	  for f in $$(grep -h -o '^func Fuzz[A-Za-z0-9_]*' $$dir/*_test.go 2>/dev/null | sed 's/^func //'); do \
	    echo "== $$pkg $$f"; $(GO) test -run '^$$' -fuzz "^$$f\$$" -fuzztime $(FUZZTIME) $$pkg; \
	  done; \
	done

lint: ## gofmt and go vet
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...

run: build ## mount the shipped examples at $(MNT), in the foreground (Ctrl-C unmounts), with their stack backend
	mkdir -p $(MNT)
	PULUMI_BACKEND_URL=file://$(STACKS) PULUMI_CONFIG_PASSPHRASE_FILE=$(STACKS)/PASSPHRASE $(BIN) --dir $(DIR) mount $(MNT)

unmount: build ## unmount $(MNT) (lazily if busy)
	$(BIN) unmount $(MNT)

clean:
	rm -rf bin
