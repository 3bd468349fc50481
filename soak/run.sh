#!/usr/bin/env bash
# make soak / make soak-smoke: builds the harness (soak/soak_test.go) and
# runs it as root against a real containerd, a real systemd --user manager
# and the real cgroupcleand binary, churning pods and injecting faults for
# SOAK_DURATION. It writes $SOAK_OUT (default bench/soak.md).
# Knobs (environment): SOAK_DURATION=10m SOAK_OUT=path SOAK_SEED=n
# SOAK_MAX_PODS=10 SOAK_FAULT_EVERY=12s SOAK_NOTE="..." SOAK_NO_DBUS=1 (skip
# the systemd-driver daemon and its D-Bus fault).
# --smoke: 75 s, a fault every 6 s (each kind at least once), report to
# $TMPDIR/cgroupclean-soak-smoke.md unless SOAK_OUT is set (CI).
# The test binary is exec'd directly (not under `go test`), so Ctrl-C
# reaches it alone: it stops churning, drains, reports and cleans up.
set -euo pipefail
cd "$(dirname "$0")"
if [ "${1:-}" = --smoke ]; then
	export SOAK_SMOKE=1 SOAK_DURATION=${SOAK_DURATION:-75s} \
		SOAK_OUT=${SOAK_OUT:-${TMPDIR:-/tmp}/cgroupclean-soak-smoke.md}
elif [ $# -gt 0 ]; then
	echo "usage: $0 [--smoke]" >&2
	exit 2
fi
out=${SOAK_OUT:-../bench/soak.md}
case $out in /*) ;; *) out=$PWD/$out ;; esac
bin=${TMPDIR:-/tmp}/cgroupclean-soak.test
${GO:-go} test -c -o "$bin" .
export CGROUPCLEAN_SOAK=${SOAK_DURATION:-10m} CGROUPCLEAN_REQUIRE_INTEGRATION=1 SOAK_OUT=$out
exec "$bin" -test.run '^TestSoak$' -test.v -test.timeout 24h
