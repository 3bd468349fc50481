#!/usr/bin/env bash
# make bench: builds the harness (bench/bench_test.go) and runs it as root on
# the real cgroupfs; it writes $BENCH_OUT (default bench/results.md).
# Knobs (environment): BENCH_SIZES=1000,10000 BENCH_RUNS=5 BENCH_SCAN_REPS=3
# BENCH_WORKERS=2 BENCH_IDLE_SANDBOXES=100 BENCH_IDLE_PASSES=50
# BENCH_GOBENCHTIME=1s BENCH_NOTE="..." BENCH_OUT=path BENCH_PROFILE=dir (CPU
# profiles of the clean pass) BENCH_DAEMON_PASSES=20
# BENCH_STEADY_SANDBOXES=100,1000 BENCH_SANDBOX_WORKERS=4 BENCH_BINARY=path
# (default: `make build`'s bin/cgroupcleand).
# The test binary is exec'd directly (not under `go test`), so Ctrl-C
# reaches it alone and it removes its cgroup trees and containerd first.
# --smoke: one run at 50 pods, 5 idle sandboxes, 2 daemon passes at 3 and
# 6 live sandboxes, each Go benchmark once
# (CI: proves the harness works in well under a minute; not a measurement),
# written to $TMPDIR/cgroupclean-bench-smoke.md unless BENCH_OUT is set.
set -euo pipefail
cd "$(dirname "$0")"
if [ "${1:-}" = --smoke ]; then
	export BENCH_SIZES=${BENCH_SIZES:-50} BENCH_RUNS=${BENCH_RUNS:-1} BENCH_SCAN_REPS=${BENCH_SCAN_REPS:-1} \
		BENCH_IDLE_SANDBOXES=${BENCH_IDLE_SANDBOXES:-5} BENCH_IDLE_PASSES=${BENCH_IDLE_PASSES:-5} \
		BENCH_GOBENCHTIME=${BENCH_GOBENCHTIME:-1x} BENCH_OUT=${BENCH_OUT:-${TMPDIR:-/tmp}/cgroupclean-bench-smoke.md} \
		BENCH_DAEMON_PASSES=${BENCH_DAEMON_PASSES:-2} BENCH_STEADY_SANDBOXES=${BENCH_STEADY_SANDBOXES:-3,6}
elif [ $# -gt 0 ]; then
	echo "usage: $0 [--smoke]" >&2
	exit 2
fi
out=${BENCH_OUT:-results.md}
case $out in /*) ;; *) out=$PWD/$out ;; esac
# The whole-process rows measure the binary `make build` makes.
if [ -z "${BENCH_BINARY:-}" ]; then
	make -C .. --no-print-directory build
	BENCH_BINARY=$(cd .. && pwd)/bin/cgroupcleand
fi
export BENCH_BINARY
bin=${TMPDIR:-/tmp}/cgroupclean-bench.test
${GO:-go} test -c -o "$bin" .
export CGROUPCLEAN_BENCH=1 CGROUPCLEAN_REQUIRE_INTEGRATION=1 BENCH_OUT=$out
exec "$bin" -test.run '^TestBench$' -test.v -test.timeout 3h
