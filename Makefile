# cgroupclean build, packages and rollout files.
# Needs only Go: nfpm and Butane run as pinned `go tool`s from go.mod.

SHELL := /bin/bash
GO ?= go

# Version stamped into the binary and the packages (`make version` prints it):
#   on a tag v1.2.0:          v1.2.0                 package 1.2.0
#   3 commits after it:       v1.2.0-3-gHASH         package 1.2.0+3.gHASH (after 1.2.0)
#   no version tag:           0.0.0~gitDATE.HASH     the same (before every release)
#   pre-release tag v1.2.0-rc1: package 1.2.0~rc1 (before 1.2.0)
# "-dirty" (".dirty" in the package) marks uncommitted changes. An untagged
# build must never look like a release: a bare hash starting with a digit
# would sort above 1.0.0 in dpkg. "~" sorts before anything, in dpkg and rpm
# alike, so 0.0.0~git... is older than any tagged version. DATE is the
# commit's time (UTC), so untagged builds sort by commit.
VERSION ?= $(shell git describe --tags --match 'v[0-9]*' --match '[0-9]*' --dirty 2>/dev/null || \
	{ h=$$(git describe --always --abbrev=12 --dirty 2>/dev/null) && \
	d=$$(TZ=UTC git log -1 --format=%cd --date=format-local:%Y%m%d%H%M%S) && \
	echo "0.0.0~git$$d.$${h/-dirty/.dirty}"; } || echo 0.0.0~unknown)
COMMIT ?= $(shell git rev-parse --short=12 HEAD 2>/dev/null || echo unknown)
# The commit's date, not the clock: rebuilding a commit gives the same binary.
BUILD_DATE ?= $(shell d=$$(git log -1 --format=%ct 2>/dev/null); \
	date -u -d "@$${SOURCE_DATE_EPOCH:-$${d:-$$(date +%s)}}" +%Y-%m-%dT%H:%M:%SZ)
# Package version: no leading v; a pre-release tag's "-rc1" as "~rc1"; the
# rest of describe's "-3-gabc-dirty" as "+3.gabc.dirty".
PKG_VERSION ?= $(shell echo '$(VERSION)' | sed -E 's/^v//; s/^([0-9.]+)-((rc|alpha|beta|pre)[0-9.]*)/\1~\2/; s/-/+/; s/-/./g')
PKG_MAINTAINER ?= The cgroupclean authors <cgroupclean@users.noreply.github.com>

BIN := bin/cgroupcleand
DIST := dist
CONFIG_SRC ?= config.example.toml
CATALOG_SRC ?= systemd/cgroupclean.catalog
CGROUPCLEAND_BIN ?= $(BIN)
MAN_GZ := $(DIST)/build/cgroupcleand.8.gz

LDFLAGS := -s -w -X main.version=$(VERSION) -X main.commit=$(COMMIT) -X main.buildDate=$(BUILD_DATE)
NFPM := $(GO) tool github.com/goreleaser/nfpm/v2/cmd/nfpm
BUTANE := $(GO) tool github.com/coreos/ignition/v2/butane/internal
NFPM_ENV := PKG_VERSION='$(PKG_VERSION)' PKG_MAINTAINER='$(PKG_MAINTAINER)' \
	CGROUPCLEAND_BIN='$(CGROUPCLEAND_BIN)' CONFIG_SRC='$(CONFIG_SRC)' \
	CATALOG_SRC='$(CATALOG_SRC)' MAN_GZ='$(MAN_GZ)'

.PHONY: all build test fuzz deps lint deb rpm packages package-test machineconfig \
	machineconfig-check demo bench bench-smoke bench-v2 soak soak-smoke node-test clean version
.PHONY: rules rules-test

all: build

# Static (no cgo: the same binary runs on every glibc), PIE, stripped.
build:
	CGO_ENABLED=0 $(GO) build -trimpath -buildmode=pie -ldflags '$(LDFLAGS)' -o $(BIN) ./cmd/cgroupcleand

version:
	@echo 'version=$(VERSION) pkg_version=$(PKG_VERSION) commit=$(COMMIT) build_date=$(BUILD_DATE)'

# The README's test command, and what CI runs: every Go test (integration
# tests need root), the demo (the README's other command), the soak smoke
# run, a short run of every fuzz target, the package checks and the
# benchmark smoke run.
# The memcg tests count dying memcgs machine-wide (cgroup v1 has no
# per-subtree count), so they run alone, after the packages that create
# and remove cgroups in parallel.
test:
	@scripts/install-deps.sh
	$(GO) test -count=1 $$($(GO) list ./... | grep -v '/cgroupclean/memcg$$')
	$(GO) test -count=1 ./cgroupclean/memcg/
	$(MAKE) --no-print-directory demo
	$(MAKE) --no-print-directory soak-smoke
	$(MAKE) --no-print-directory fuzz
	$(MAKE) --no-print-directory package-test
	$(MAKE) --no-print-directory rules-test
	$(MAKE) --no-print-directory bench-smoke
	$(MAKE) --no-print-directory fleet-test
	$(MAKE) --no-print-directory node-test

# Every Fuzz* target in the tree, FUZZTIME each (seed corpora run in `go test` too).
# A count, not a duration: with a duration Go's fuzz coordinator can race its
# own deadline on a loaded machine and fail with "context deadline exceeded"
# though nothing was found (golang/go#51484, #56238); a count has no deadline.
# The failing run's own output is printed (a rerun could pass and hide it).
FUZZTIME ?= 30000x
fuzz:
	@set -e; log=$$(mktemp); trap 'rm -f "$$log"' EXIT; \
	for f in $$(grep -l '^func Fuzz' $$(git ls-files '*_test.go')); do \
		d=./$$(dirname $$f); \
		for t in $$(grep -o '^func Fuzz[A-Za-z0-9_]*' $$f | cut -d' ' -f2); do \
			echo "fuzz $$d $$t ($(FUZZTIME))"; \
			$(GO) test $$d -run '^$$' -fuzz "^$$t$$" -fuzztime $(FUZZTIME) >"$$log" 2>&1 || { \
				cat "$$log"; echo "fuzz $$d $$t: FAILED"; exit 1; }; \
		done; \
	done

deps:
	scripts/install-deps.sh

# A throwaway containerd, live and orphaned pods under a cgroup root of its
# own, and the real binary's scan, clean --dry-run, clean, scan (root).
demo: build
	@scripts/install-deps.sh
	@set -o pipefail; CGROUPCLEAN_DEMO=$(CURDIR)/$(BIN) $(GO) test -count=1 -v -run '^TestDemo$$' ./internal/demo/ \
		| grep -v -E '^(=== RUN|--- PASS|PASS$$|ok )'

lint:
	@out=$$(gofmt -l .) || exit 1; \
	if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...

$(MAN_GZ): packaging/man/cgroupcleand.8
	@mkdir -p $(dir $@)
	gzip -9n -c $< > $@

# CGROUPCLEAND_BIN=path skips the build (package-test uses it for a second
# version of the same binary).
deb rpm: $(MAN_GZ)
	@if [ '$(CGROUPCLEAND_BIN)' = '$(BIN)' ]; then $(MAKE) --no-print-directory build; fi
	@mkdir -p $(DIST)
	$(NFPM_ENV) $(NFPM) package --config packaging/nfpm.yaml --packager $@ --target $(DIST)/

packages: deb rpm

package-test:
	packaging/test-packages.sh

# Regenerates the MachineConfigs and the ignition config from their Butane
# sources, embedding systemd/cgroupcleand.service and config.example.toml.
# First packaging/okd/config-observe.toml, the canary pool's config
# (config.example.toml with clean.mode = "observe").
# The files-dir is the repo root, so the .bu files name those paths as they
# are in the repository.
BUTANE_SRC := $(wildcard packaging/okd/*.bu packaging/ignition/*.bu)
machineconfig:
	$(GO) run ./packaging/cmd/observe-config
	@for bu in $(BUTANE_SRC); do \
		case "$$bu" in *.ign.bu) out=$${bu%.bu};; *) out=$${bu%.bu}.yaml;; esac; \
		echo "butane $$bu -> $$out"; \
		$(BUTANE) --strict --pretty --files-dir . "$$bu" > "$$out.tmp" && mv "$$out.tmp" "$$out" || { rm -f "$$out.tmp"; exit 1; }; \
	done

# Fails when a generated file differs from what its Butane source gives now.
machineconfig-check: machineconfig
	@git diff --exit-code -- packaging/okd packaging/ignition || \
		{ echo "generated rollout files were stale: commit the regenerated ones"; exit 1; }

# Figures against baselines on real cgroupfs, written to bench/results.md
# (root; about 13 minutes; BENCH_SIZES, BENCH_RUNS... see bench/README.md).
bench: build
	BENCH_BINARY=$(CURDIR)/$(BIN) bench/run.sh

# One small run proving the harness works (CI); not a measurement.
bench-smoke: build
	BENCH_BINARY=$(CURDIR)/$(BIN) bench/run.sh --smoke

# Churn soak with fault injection (root): real containerd, systemd --user and
# the real binary; pods churned, faults injected, live cgroups checked after
# every step. Writes bench/soak.md. `make soak SOAK_DURATION=2h` for a long one.
SOAK_DURATION ?= 10m
soak:
	SOAK_DURATION=$(SOAK_DURATION) soak/run.sh

# CI: about 75 s, report to $TMPDIR (bench/soak.md is not touched).
soak-smoke:
	soak/run.sh --smoke

# A real node in a VM (root; qemu without KVM): Debian 12, cgroup v2 only,
# systemd as PID 1, containerd with the systemd cgroup driver, the .deb
# installed and enabled; then the checks of node/guest, the engine tests,
# and a 3-minute soak, all in the guest; then a real kubelet beside the
# package (node/kubelet builds it, about 6 minutes cold). The guest image
# and kubelet are built once and cached under /var/cache/cgroupclean-node
# (node/run.sh has the knobs).
node-test:
	@scripts/install-deps.sh
	node/run.sh

# Ten real daemons, each a node with its own pod root, state, CRI endpoint
# (a proxy to one real containerd) and a private /run, scraped by Debian's
# Prometheus on loopback evaluating the shipped rules (durations scaled to
# 2-second passes); faults are made and undone on chosen nodes and the
# alerts are asserted through Prometheus's HTTP API (root; about 2 minutes).
.PHONY: fleet-test
fleet-test:
	@scripts/install-deps.sh
	@set -o pipefail; CGROUPCLEAN_FLEET=1 $(GO) test -count=1 -v -timeout 6m -run '^TestFleet$$' ./fleet/ \
		| grep -v -E '^=== RUN'

# The rows of `make bench` on cgroup v2: the bench harness runs in the
# guest of node-test (qemu TCG: only ratios to find mean something) and
# writes bench/results-v2.md (root; BENCH_SIZES, BENCH_RUNS as for bench).
bench-v2:
	@scripts/install-deps.sh
	NODE_STEPS=bench NODE_OUT=$${TMPDIR:-/tmp}/cgroupclean-bench-v2 node/run.sh

clean:
	rm -rf bin $(DIST)

# The alerting rules (docs/fleet.md): one source,
# packaging/prometheus/cgroupclean-rules.yml; `rules` regenerates the OKD
# PrometheusRule from it (go test ./packaging/prometheus/ fails when the
# committed one is stale). rules-test is promtool's syntax check and the
# unit tests of every alert (Debian package prometheus; about 5 s).
RULES_SRC := packaging/prometheus/cgroupclean-rules.yml
RULES_OKD := packaging/okd/metrics/cgroupclean-prometheusrule.yaml
rules:
	$(GO) run ./packaging/prometheus/cmd/cgroupclean-rules okd > $(RULES_OKD).tmp && mv $(RULES_OKD).tmp $(RULES_OKD) || { rm -f $(RULES_OKD).tmp; exit 1; }

rules-test:
	@scripts/install-deps.sh
	promtool check rules $(RULES_SRC)
	cd packaging/prometheus && promtool test rules cgroupclean-rules.test.yml cgroupclean-rules-long.test.yml

# What removal gives back (root; about 50 minutes on a quiet 2-core host):
# cAdvisor's manager as kubelet embeds it over live and leaked pods before
# and after one clean, memory.stat over dying memcgs with each remedy, and
# the peers' removal rates. The harness is the module bench/relief (its own
# go.mod: cAdvisor, gonum plot, cri-tools). It splices its tables into
# bench/results.md and draws docs/relief-cadvisor.png. Knobs (RELIEF_RUNS,
# RELIEF_LEAKS, RELIEF_WINDOW_S, ...): docs/benchmarks.md.
RELIEF_OUT ?= $(or $(TMPDIR),/tmp)/cgroupclean-relief
.PHONY: relief
relief: build
	@scripts/install-deps.sh
	@mkdir -p $(RELIEF_OUT)
	cd bench/relief && $(GO) build -o $(RELIEF_OUT)/crictl sigs.k8s.io/cri-tools/cmd/crictl
	cd bench/relief && RELIEF_BINARY=$(CURDIR)/$(BIN) RELIEF_CRICTL=$(RELIEF_OUT)/crictl RELIEF_OUT=$(RELIEF_OUT) \
		$(GO) test -count=1 -v -timeout 150m -run '^(TestCadvisorRelief|TestCadvisorLeakForms|TestMemstatRelief|TestPeers)$$' .
	bench/relief/splice.sh $(RELIEF_OUT) bench/results.md
	cp $(RELIEF_OUT)/relief-cadvisor.png docs/relief-cadvisor.png
