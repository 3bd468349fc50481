#!/bin/bash
# Runs inside the node test's guest (started by the image's node-test.service
# from the 9p share): the steps the host listed in steps, each under its own
# timeout, each leaving <step>.rc, <step>.log and <step>.time in out/; then
# the boot's journal. The host judges the run by these files alone.
S=/mnt/host
O=$S/out
B=$S/bin
mkdir -p "$O"
. "$S/env"
up() { cut -d' ' -f1 /proc/uptime; }
state=$(timeout 300 systemctl is-system-running --wait)
echo "NODE-BOOTED state=$state uptime=$(up)"
echo "$state" > "$O/system-state"
export CGROUPCLEAN_REQUIRE_INTEGRATION=1 CGROUPCLEAN_PAUSE_BIN=$B/pause NODE_SHARE=$S
# Test temp dirs on disk: tmpfs pages are not reclaimable (memcg step).
export TMPDIR=/var/tmp
step() {
  local name=$1 limit=$2
  shift 2
  echo "NODE-STEP-BEGIN $name uptime=$(up)"
  local t=$(date +%s)
  (cd /var/tmp && timeout -k 15 "$limit" "$@") > "$O/$name.log" 2>&1
  local rc=$?
  echo $(( $(date +%s) - t )) > "$O/$name.time"
  # The test's own verdict lines on the console, for the host's progress.
  grep -E '^\s*--- (PASS|FAIL|SKIP)' "$O/$name.log" | sed "s/^/NODE-$name: /"
  echo "$rc" > "$O/$name.rc"
  echo "NODE-STEP-END $name rc=$rc uptime=$(up)"
}
for s in $(cat "$S/steps"); do
  case $s in
  package) step package 600 "$B/node.test" -test.run '^TestPackage$' -test.v -test.timeout 570s ;;
  memcg) step memcg 300 "$B/node.test" -test.run '^TestMemcgV2$' -test.v -test.timeout 280s ;;
  cgroupfs) step cgroupfs 300 "$B/node.test" -test.run '^TestCgroupfsDriver$' -test.v -test.timeout 280s ;;
  engine) step engine 600 "$B/engine.test" -test.v -test.timeout 570s ;;
  kubelet) step kubelet 900 "$B/node.test" -test.run '^TestKubelet$' -test.v -test.timeout 870s ;;
  soak)
    step soak 420 env CGROUPCLEAN_SOAK="$NODE_SOAK" CGROUPCLEAN_SOAK_BIN=$B/cgroupcleand \
      SOAK_OUT="$O/soak.md" "$B/soak.test" -test.run '^TestSoak$' -test.v -test.timeout 400s ;;
  bench)
    # The rows make bench measures, cgroup v2 under emulation; the daemon
    # rows with live sandboxes would take hours under TCG, and the Go
    # benchmarks need a Go toolchain the guest lacks.
    # The programs run from the guest's disk, as a node runs them from
    # the package: started from the 9p share, every page of the binary
    # came over 9p at each start (seconds per process under emulation).
    L=/var/tmp/bench-bin
    mkdir -p "$L"
    cp "$B/cgroupcleand" "$B/benchpass" "$B/bench.test" "$L/"
    strace=
    if [ -x "$S/strace/strace" ]; then cp -r "$S/strace" "$L/strace" && strace=$L/strace/strace; fi
    step bench "$NODE_BENCH_TIMEOUT" env CGROUPCLEAN_BENCH=1 BENCH_BINARY=$L/cgroupcleand BENCH_BENCHPASS=$L/benchpass \
      BENCH_OUT="$O/results-v2.md" BENCH_SKIP=gobench,daemon,idle,steady BENCH_STRACE="$strace" \
      "$L/bench.test" -test.run '^TestBench$' -test.v -test.timeout "$((NODE_BENCH_TIMEOUT - 30))s" ;;
  *) echo "NODE-STEP-UNKNOWN $s" ;;
  esac
done
journalctl -b --no-pager -o short-monotonic > "$O/journal.txt" 2>&1
sync
touch "$O/done"
echo "NODE-DONE uptime=$(up)"
