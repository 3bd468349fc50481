#!/usr/bin/env bash
# Installs the Debian packages the tests and the demo use (Debian 12, root).
#   containerd, runc: the real CRI server of the integration tests and the demo
#   systemd, dbus, dbus-user-session: a real systemd --user manager on its own
#     bus, and a real systemd-journald (both run in private namespaces)
#   rpm, lintian, rpmlint, busybox-static, man-db: package checks
#   qemu-system-x86, qemu-utils, mmdebstrap, e2fsprogs, zstd: make node-test
#     (a Debian guest image built from packages, booted under qemu)
#   prometheus: promtool checks and unit-tests the alerting rules (make rules-test)
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive
pkgs=(containerd runc systemd dbus dbus-user-session util-linux
  rpm lintian rpmlint busybox-static man-db
  qemu-system-x86 qemu-utils mmdebstrap e2fsprogs zstd
  prometheus)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi
echo "installing: ${missing[*]}"
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
