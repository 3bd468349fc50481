#!/usr/bin/env bash
# Builds the node test's guest: a Debian 12 root file system from Debian
# packages (mmdebstrap) packed into a raw ext4 image without loop mounts
# (mkfs.ext4 -d), with the kernel and initrd beside it.
#   usage: node/image/build.sh OUTDIR [DEBCACHE]
# Writes OUTDIR/{root.img,vmlinuz,initrd.img}. DEBCACHE keeps the downloaded
# .debs between builds. Root only.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
out=${1:?usage: build.sh OUTDIR [DEBCACHE]}
debcache=${2:-}
# The node: systemd as PID 1 with dbus, journald and udev; the kernel;
# containerd and runc; apt for the package's install/remove/purge checks;
# dbus-user-session for the systemd --user managers of the engine tests and
# the soak.
pkgs=systemd,systemd-sysv,dbus,dbus-user-session,udev,kmod,linux-image-amd64,initramfs-tools,zstd,containerd,runc,iproute2,procps
mkdir -p "$out"
rootfs=$(mktemp -d "$out/rootfs.XXXXXX")
trap 'rm -rf "$rootfs"' EXIT
hooks=()
if [ -n "$debcache" ]; then
  mkdir -p "$debcache"
  hooks+=(--skip=download/empty
    --setup-hook='mkdir -p "$1"/var/cache/apt/archives/'
    --setup-hook="sync-in $debcache /var/cache/apt/archives/"
    --customize-hook="sync-out /var/cache/apt/archives $debcache")
fi
mmdebstrap --mode=root --variant=apt --dpkgopt=force-unsafe-io --include="$pkgs" \
  "${hooks[@]}" \
  --essential-hook="cp -a $here/overlay-early/. \"\$1\"/" \
  --customize-hook='rm -f "$1"/var/cache/apt/archives/*.deb "$1"/var/cache/apt/*.bin; rm -rf "$1"/var/lib/apt/lists/*' \
  --customize-hook="cp -a $here/overlay/. \"\$1\"/" \
  --customize-hook='chroot "$1" passwd -d root' \
  bookworm "$rootfs" \
  "deb http://deb.debian.org/debian bookworm main" \
  "deb http://deb.debian.org/debian bookworm-updates main" \
  "deb http://deb.debian.org/debian-security bookworm-security main"
cp -L "$rootfs/vmlinuz" "$out/vmlinuz"
cp -L "$rootfs/initrd.img" "$out/initrd.img"
# 1.5 GiB leaves room for the pods' overlay snapshots; the file is sparse.
mkfs.ext4 -q -F -L root -E root_owner=0:0 -d "$rootfs" "$out/root.img" 1536M
