#!/usr/bin/env bash
# make node-test: a real node in a VM. Builds (or takes from the cache) a
# Debian 12 guest image, builds the .deb and the guest test programs, boots
# the guest under qemu (software emulation, 2 vCPUs, -snapshot) with them on
# a 9p share, and judges the run by the result files the guest writes back.
# Root only. Knobs (environment):
#   NODE_CACHE=/var/cache/cgroupclean-node  image cache (one dir per input hash)
#   NODE_OUT=${TMPDIR:-/tmp}/cgroupclean-node-test  logs of the last run
#   NODE_VM_TIMEOUT=1500  seconds the VM may run in all
#   NODE_SOAK=3m  length of the soak in the guest
#   NODE_ONLY=regexp  run only the guest steps whose name matches
#   NODE_STEPS="package memcg cgroupfs engine soak kubelet"  the guest steps, in order
#     (kubelet: a real kubelet beside the package, built from node/kubelet
#     and cached under NODE_CACHE/kubelet-<hash>)
#     (bench: the benchmarks of bench/ in the guest, as `make bench-v2` runs
#     them; NODE_BENCH_TIMEOUT=3600 seconds, NODE_BENCH_OUT=bench/results-v2.md
#     the report's place on the host; BENCH_SIZES and BENCH_RUNS as in bench/)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/.." && pwd)
cd "$repo"
GO=${GO:-go}
cache=${NODE_CACHE:-/var/cache/cgroupclean-node}
out=${NODE_OUT:-${TMPDIR:-/tmp}/cgroupclean-node-test}
export NODE_SOAK=${NODE_SOAK:-3m}
bench_timeout=${NODE_BENCH_TIMEOUT:-3600}
bench_out=${NODE_BENCH_OUT:-$repo/bench/results-v2.md}
# The steps the guest must run, each with its result file: one the guest
# skips fails the run.
steps=$(printf '%s\n' ${NODE_STEPS:-package memcg cgroupfs engine soak kubelet} | grep -E "${NODE_ONLY:-.}" || true)
[ -n "$steps" ] || { echo "node-test: NODE_ONLY=${NODE_ONLY:-} matches none of the steps ${NODE_STEPS:-}" >&2; exit 1; }
for s in $steps; do
  case $s in package|memcg|cgroupfs|engine|soak|bench|kubelet) ;; *) echo "node-test: unknown step $s" >&2; exit 1 ;; esac
done
has_step() { printf '%s\n' $steps | grep -qx "$1"; }
default_vm_timeout=1500
! has_step bench || default_vm_timeout=$((bench_timeout + 600))
! has_step kubelet || default_vm_timeout=$((default_vm_timeout + 900))
vm_timeout=${NODE_VM_TIMEOUT:-$default_vm_timeout}

[ "$(id -u)" = 0 ] || { echo "node-test: needs root (mmdebstrap, the image cache)" >&2; exit 1; }
for bin in qemu-system-x86_64 mmdebstrap mkfs.ext4 zstd; do
  command -v "$bin" >/dev/null || { echo "node-test: $bin missing (scripts/install-deps.sh)" >&2; exit 1; }
done

t0=$(date +%s)
phase_t=$t0
phase() {
  local now; now=$(date +%s)
  printf 'node-test: %-34s %4ds (total %ds)\n' "$1" $((now - phase_t)) $((now - t0))
  phase_t=$now
}

rm -rf "$out"
mkdir -p "$out" "$cache"
share=$(mktemp -d "${TMPDIR:-/tmp}/cgroupclean-node-share.XXXXXX")
qemu_pid=
stop_qemu() {
  # Only the qemu this script started, by its PID.
  if [ -n "$qemu_pid" ] && kill -0 "$qemu_pid" 2>/dev/null; then
    kill "$qemu_pid" 2>/dev/null || true
    for _ in $(seq 50); do kill -0 "$qemu_pid" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$qemu_pid" 2>/dev/null || true
  fi
  [ -z "$qemu_pid" ] || wait "$qemu_pid" 2>/dev/null || true
  qemu_pid=
}
cleanup() {
  stop_qemu
  rm -rf "$share" "$share.vdb"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# 1. The guest image, cached under the hash of everything it is built from.
hash=$(cd "$here/image" && { find . -type f -o -type l | LC_ALL=C sort | while read -r f; do
  printf '%s %s\n' "$f" "$(stat -c %a "$f")"
  if [ -L "$f" ]; then readlink "$f"; else sha256sum < "$f"; fi
done; } | sha256sum | cut -c1-16)
img=$cache/$hash
(
  flock 9
  if [ ! -e "$img/complete" ]; then
    echo "node-test: building the guest image $img (log: $out/image-build.log)"
    rm -rf "$img"
    if ! timeout 1200 "$here/image/build.sh" "$img.tmp" "$cache/debs" > "$out/image-build.log" 2>&1; then
      tail -30 "$out/image-build.log"; rm -rf "$img.tmp"; echo "node-test: image build failed" >&2; exit 1
    fi
    touch "$img.tmp/complete"
    mv "$img.tmp" "$img"
    # Images of older inputs are not used again.
    find "$cache" -mindepth 1 -maxdepth 1 -type d -regextype posix-extended -regex '.*/[0-9a-f]{16}(\.tmp)?' ! -name "$hash" -exec rm -rf {} +
  fi
) 9>"$cache/lock"
phase "guest image ($hash)"

# 1b. kubelet, for the kubelet step: built from its own module (node/kubelet
# pins k8s.io/kubernetes), static, cached under the hash of that module, the
# Go version and the flags. Cold: about 6 minutes on 2 cores.
if has_step kubelet; then
  kver=$(sed -n 's|^require k8s.io/kubernetes \(v[0-9.]*\)$|\1|p' "$here/kubelet/go.mod")
  [ -n "$kver" ] || { echo "node-test: no k8s.io/kubernetes version in node/kubelet/go.mod" >&2; exit 1; }
  kminor=${kver#v*.}; kminor=${kminor%%.*}
  kv=k8s.io/component-base/version
  kflags="-s -w -X $kv.gitVersion=$kver -X $kv.gitMajor=1 -X $kv.gitMinor=$kminor -X $kv.gitTreeState=clean -X $kv.buildDate=1970-01-01T00:00:00Z"
  khash=$({ cat "$here/kubelet/go.mod" "$here/kubelet/go.sum" "$here/kubelet/tools.go"; "$GO" version; echo "$kflags"; } | sha256sum | cut -c1-16)
  kdir=$cache/kubelet-$khash
  (
    flock 9
    if [ ! -x "$kdir/kubelet" ]; then
      echo "node-test: building kubelet $kver into $kdir (log: $out/kubelet-build.log)"
      rm -rf "$kdir.tmp" && mkdir -p "$kdir.tmp"
      if ! (cd "$here/kubelet" && CGO_ENABLED=0 timeout 2400 "$GO" build -ldflags "$kflags" -o "$kdir.tmp/kubelet" k8s.io/kubernetes/cmd/kubelet) > "$out/kubelet-build.log" 2>&1; then
        tail -30 "$out/kubelet-build.log"; rm -rf "$kdir.tmp"; echo "node-test: kubelet build failed" >&2; exit 1
      fi
      mv "$kdir.tmp" "$kdir"
      find "$cache" -mindepth 1 -maxdepth 1 -type d -name 'kubelet-*' ! -name "kubelet-$khash" -exec rm -rf {} +
    fi
  ) 9>"$cache/lock"
  phase "kubelet $kver ($khash)"
fi

# 2. The package as an operator gets it, and the guest's test programs
# (static: the guest has no Go).
timeout 600 make --no-print-directory deb > "$out/make-deb.log" 2>&1 || { cat "$out/make-deb.log"; exit 1; }
deb=$(sed -n 's/.*created package: *//p' "$out/make-deb.log" | tail -1)
[ -f "$deb" ] || { cat "$out/make-deb.log"; echo "node-test: no .deb from make deb" >&2; exit 1; }
mkdir -p "$share/bin" "$share/out"
cp "$deb" "$share/cgroupclean.deb"
cp bin/cgroupcleand "$share/bin/cgroupcleand"
export CGO_ENABLED=0
build() { timeout 600 "$GO" "$@" || exit 1; }
if has_step package || has_step memcg || has_step cgroupfs || has_step kubelet; then
  build vet -tags nodeguest ./node/guest/
  build test -c -tags nodeguest -o "$share/bin/node.test" ./node/guest/
fi
! has_step engine || build test -c -o "$share/bin/engine.test" ./cgroupclean/engine/
! has_step soak || build test -c -o "$share/bin/soak.test" ./soak/
build build -trimpath -ldflags '-s -w' -o "$share/bin/pause" ./internal/testbed/pause/
printf 'NODE_SOAK=%q\n' "$NODE_SOAK" > "$share/env"
if has_step bench; then
  # The guest has no Go: the harness and its benchpass child are built here,
  # benchpass as `make build` builds cgroupcleand (bench/ builds it so too).
  build test -c -o "$share/bin/bench.test" ./bench/
  build build -trimpath -buildmode=pie -o "$share/bin/benchpass" ./bench/cmd/benchpass
  # strace (if the host has it) counts the cgroup files one clean opens.
  # Host and guest are both Debian 12: its libraries beside it suffice.
  if command -v strace >/dev/null; then
    mkdir -p "$share/strace"
    cp "$(command -v strace)" "$share/strace/strace.bin"
    ldd "$(command -v strace)" | awk '$3 ~ /^\// && $1 !~ /^(libc|libm|ld-linux)/ {print $3}' | xargs -r cp -t "$share/strace/"
    printf '#!/bin/sh\nd=$(dirname "$0")\nLD_LIBRARY_PATH=$d exec "$d/strace.bin" "$@"\n' > "$share/strace/strace"
    chmod 0755 "$share/strace/strace"
  fi
  {
    printf 'NODE_BENCH_TIMEOUT=%q\n' "$bench_timeout"
    printf 'export BENCH_SIZES=%q BENCH_RUNS=%q BENCH_SCAN_REPS=%q BENCH_WORKERS=%q BENCH_NOTE=%q\n' \
      "${BENCH_SIZES:-1000,10000}" "${BENCH_RUNS:-5}" "${BENCH_SCAN_REPS:-3}" "${BENCH_WORKERS:-2}" "${BENCH_NOTE:-}"
    # Only ratios mean something under emulation: say what emulated it.
    printf 'export BENCH_VM=%q\n' "$(qemu-system-x86_64 --version | head -1 | sed 's/ *(.*//'), TCG (no KVM), 2 vCPUs, 2 GiB; host CPU: $(sed -n 's/^model name[^:]*: *//p' /proc/cpuinfo | head -1), $(nproc) threads"
  } >> "$share/env"
fi
qemu_extra=()
if has_step kubelet; then
  cp "$kdir/kubelet" "$share/bin/kubelet"
  # A small ext4 disk of its own (/dev/vdb) the kubelet step freezes
  # (fsfreeze) to hold a task in uninterruptible sleep; -snapshot keeps
  # the file as made.
  mkfs.ext4 -q -F -L frozen "$share.vdb" 16M > /dev/null
  qemu_extra+=(-drive "file=$share.vdb,if=virtio,format=raw")
fi
install -m 0755 "$here/guest-run.sh" "$share/guest-run.sh"
echo $steps > "$share/steps"
phase "make deb, test programs"

# 3. Boot. The guest runs its steps and powers off; qemu's exit status says
# nothing about them (a poweroff is 0), the result files do.
qemu-system-x86_64 -accel tcg,thread=multi,tb-size=256 -smp 2 -m 2048 \
  -kernel "$img/vmlinuz" -initrd "$img/initrd.img" \
  -append 'root=/dev/vda rw console=ttyS0 systemd.unified_cgroup_hierarchy=1 quiet panic=-1' \
  -drive "file=$img/root.img,if=virtio,format=raw" "${qemu_extra[@]}" -snapshot \
  -device virtio-rng-pci -display none -no-reboot -monitor none \
  -serial "file:$out/console.log" \
  -virtfs "local,path=$share,mount_tag=host,security_model=none,id=host" &
qemu_pid=$!
seen=0
deadline=$(( $(date +%s) + vm_timeout ))
while kill -0 "$qemu_pid" 2>/dev/null; do
  if [ "$(date +%s)" -ge "$deadline" ]; then
    echo "node-test: the VM ran past ${vm_timeout}s, killing it" >&2
    break
  fi
  # Progress: the guest's step markers, as they come.
  if [ -f "$out/console.log" ]; then
    n=$(grep -c '' "$out/console.log" || true)
    if [ "$n" -gt "$seen" ]; then
      sed -n "$((seen + 1)),${n}p" "$out/console.log" | tr -d '\r' | sed -n 's/.*\(NODE-.*\)/  guest: \1/p' || true
      seen=$n
    fi
  fi
  sleep 2
done
stop_qemu
phase "VM boot, tests, poweroff"

# 4. Verdict.
cp -r "$share/out/." "$out/" 2>/dev/null || true
fail=0
if [ ! -f "$out/done" ]; then
  echo "node-test: the guest did not finish (no result file 'done'); console: $out/console.log" >&2
  tail -40 "$out/console.log" | tr -d '\r' >&2
  fail=1
fi
for step in $steps; do
  rc=$(cat "$out/$step.rc" 2>/dev/null || echo none)
  if [ "$rc" = 0 ]; then
    echo "node-test: $step: PASS ($(cat "$out/$step.time" 2>/dev/null || echo ?)s)"
  else
    echo "node-test: $step: FAIL (rc $rc; log $out/$step.log)"
    [ -f "$out/$step.log" ] && grep -E -- '^\s*(--- FAIL|FAIL|panic|.*_test\.go:[0-9]+:)' "$out/$step.log" | head -60
    fail=1
  fi
done
if [ "$fail" != 0 ]; then
  if [ -f "$out/journal.txt" ]; then
    echo "===== guest journal (journalctl -b), $out/journal.txt ====="
    cat "$out/journal.txt"
    echo "===== end of guest journal ====="
  else
    echo "node-test: no guest journal came back" >&2
  fi
  echo "node-test: FAIL (logs in $out)"
  exit 1
fi
if has_step bench; then
  cp "$out/results-v2.md" "$bench_out"
  echo "node-test: wrote $bench_out"
fi
phase "verdict"
echo "node-test: PASS (logs in $out)"
