#!/bin/bash
# Builds the cgroupclean deb and rpm and checks them the way an operator's
# machine would see them (make package-test; run as root, on Debian):
#   - lintian and rpmlint exit 0 (suppressions: packaging/deb/lintian-overrides,
#     packaging/rpmlint.toml, each with its reason);
#   - every file, its mode and owner, the conffile / %config(noreplace);
#   - deb on this host: dpkg -i, upgrade over an edited config (the edit
#     survives), dpkg -r (stopped + disabled, config kept), dpkg --purge
#     (only what the package shipped goes);
#   - the maintainer scripts' systemd calls, in scratch roots (dpkg --root and
#     rpm --root) where busybox-static is /bin/sh and systemctl,
#     deb-systemd-helper and deb-systemd-invoke are fakes that log their
#     arguments, and /run/systemd/system exists so the scripts believe
#     systemd runs. The host's own systemd state is never touched by those.
#
# Needs: dpkg, rpm, lintian, rpmlint, busybox-static, go.
# Env: CGROUPCLEAND_BIN=path ships that binary instead of building one;
#      CONFIG_SRC, CATALOG_SRC as in the Makefile; KEEP=1 keeps the temp dir.
set -uo pipefail

cd "$(dirname "$0")/.." || exit 1
REPO=$PWD

pass=0
fail=0
ok() { pass=$((pass + 1)); echo "ok   $*"; }
bad() { fail=$((fail + 1)); echo "FAIL $*"; }
# check DESC CMD...: one assertion.
check() {
	local desc=$1
	shift
	if "$@"; then ok "$desc"; else bad "$desc"; fi
}
die() {
	echo "FATAL $*" >&2
	echo "package-test: $pass passed, $((fail + 1)) failed"
	exit 1
}

[ "$(id -u)" = 0 ] || die "needs root (dpkg -i on this host, rpm --root)"
for t in dpkg dpkg-deb rpm rpm2cpio lintian rpmlint go; do
	command -v "$t" >/dev/null || die "missing $t (apt-get install rpm lintian rpmlint busybox-static)"
done
BUSYBOX=/bin/busybox
[ -x "$BUSYBOX" ] && "$BUSYBOX" --list | grep -x ash >/dev/null || die "missing busybox-static ($BUSYBOX)"
# The scratch roots hold no libraries: busybox must be the static one.
[[ "$(ldd "$BUSYBOX" 2>&1)" == *"not a dynamic executable"* ]] || die "$BUSYBOX is not static: install busybox-static"

TMP=$(mktemp -d /tmp/cgroupclean-pkgtest.XXXXXX)
cleanup() {
	# Never leave the test package on the host.
	if dpkg-query -W -f '${Status}' cgroupclean 2>/dev/null | grep -q 'install\|config-files'; then
		dpkg --purge cgroupclean >/dev/null 2>&1
	fi
	rm -f /etc/cgroupclean/operator-notes.txt
	rmdir /etc/cgroupclean 2>/dev/null
	if [ "${KEEP:-0}" = 1 ]; then echo "kept $TMP"; else rm -rf "$TMP"; fi
}
trap cleanup EXIT

if dpkg-query -W -f '${Status}' cgroupclean 2>/dev/null | grep -q 'install\|config-files'; then
	echo "cgroupclean was installed on this host (left by an earlier run?): purging it first"
	dpkg --purge cgroupclean >/dev/null || die "dpkg --purge cgroupclean"
fi
[ ! -e /etc/cgroupclean ] || die "/etc/cgroupclean exists and belongs to no package: move it away first"

CONFIG_SRC=${CONFIG_SRC:-config.example.toml}
CATALOG_SRC=${CATALOG_SRC:-systemd/cgroupclean.catalog}
[ -f "$CONFIG_SRC" ] || die "no $CONFIG_SRC"
[ -f "$CATALOG_SRC" ] || die "no $CATALOG_SRC"

# rpmlint unpacks with `rpm2cpio | cpio -id`; nfpm's payload holds absolute
# names, which GNU cpio would write into the HOST's /. This shim makes cpio
# strip the leading /.
mkdir -p "$TMP/shim"
printf '#!/bin/sh\nexec /usr/bin/cpio --no-absolute-filenames "$@"\n' >"$TMP/shim/cpio"
chmod 755 "$TMP/shim/cpio"

# --- build: v1 0.1.0, v2 0.1.1 (same shipped config), v3 0.1.2 (shipped
# config changed) -------------------------------------------------------------
cp "$CONFIG_SRC" "$TMP/config-v3.toml"
printf '\n# A comment added by the 0.1.2 package.\n' >>"$TMP/config-v3.toml"
build() { # version config
	local v=$1 cfg=$2 bin
	if [ -n "${CGROUPCLEAND_BIN:-}" ]; then
		bin=$CGROUPCLEAND_BIN
	else
		bin=$TMP/cgroupcleand-$v
		make -s build BIN="$bin" VERSION="$v" >/dev/null || die "make build $v"
	fi
	make -s deb rpm DIST="$TMP/dist-$v" PKG_VERSION="$v" VERSION="$v" CGROUPCLEAND_BIN="$bin" \
		CONFIG_SRC="$cfg" CATALOG_SRC="$CATALOG_SRC" >"$TMP/build-$v.log" 2>&1 ||
		{ cat "$TMP/build-$v.log"; die "make deb rpm $v"; }
}
build 0.1.0 "$CONFIG_SRC"
build 0.1.1 "$CONFIG_SRC"
build 0.1.2 "$TMP/config-v3.toml"
DEB1=$TMP/dist-0.1.0/cgroupclean_0.1.0-1_amd64.deb
DEB2=$TMP/dist-0.1.1/cgroupclean_0.1.1-1_amd64.deb
DEB3=$TMP/dist-0.1.2/cgroupclean_0.1.2-1_amd64.deb
RPM1=$TMP/dist-0.1.0/cgroupclean-0.1.0-1.x86_64.rpm
RPM2=$TMP/dist-0.1.1/cgroupclean-0.1.1-1.x86_64.rpm
RPM3=$TMP/dist-0.1.2/cgroupclean-0.1.2-1.x86_64.rpm
for f in "$DEB1" "$DEB2" "$DEB3" "$RPM1" "$RPM2" "$RPM3"; do [ -f "$f" ] || die "not built: $f"; done
ok "built deb and rpm for 0.1.0, 0.1.1, 0.1.2"

# --- lint ----------------------------------------------------------------------
# lintian warns about a changelog that does not match the version, so lint
# the build whose version has a changelog entry.
if lintian --pedantic --display-info --display-experimental --fail-on error,warning,info,pedantic,experimental "$DEB1" >"$TMP/lintian.out" 2>&1; then
	ok "lintian (pedantic, info, experimental) exit 0"
else
	cat "$TMP/lintian.out"
	bad "lintian"
fi
grep -v 'running with root privileges' "$TMP/lintian.out" | grep -q . && cat "$TMP/lintian.out"
if PATH="$TMP/shim:$PATH" rpmlint -c packaging/rpmlint.toml "$RPM1" >"$TMP/rpmlint.out" 2>&1; then
	ok "rpmlint exit 0"
else
	bad "rpmlint"
fi
grep -E '^cgroupclean|checked;' "$TMP/rpmlint.out"
check "rpmlint: 0 errors, 0 warnings" grep -q ' 0 errors, 0 warnings' "$TMP/rpmlint.out"

# --- rpm metadata: -qpl, -qpc, --scripts -------------------------------------------
want_rpm_files="/etc/cgroupclean
/etc/cgroupclean/config.toml
/usr/bin/cgroupcleand
/usr/lib/systemd/catalog/cgroupclean.catalog
/usr/lib/systemd/system/cgroupcleand.service
/usr/share/cgroupclean/grafana/cgroupclean-dashboard.json
/usr/share/cgroupclean/prometheus/cgroupclean-rules.yml
/usr/share/cgroupclean/systemd/metrics.conf
/usr/share/licenses/cgroupclean/LICENSE
/usr/share/man/man8/cgroupcleand.8.gz"
check "rpm -qpl lists exactly the expected files" \
	test "$(rpm -qpl "$RPM1" 2>/dev/null)" = "$want_rpm_files"
check "rpm -qpc: only /etc/cgroupclean/config.toml is config" \
	test "$(rpm -qpc "$RPM1" 2>/dev/null)" = "/etc/cgroupclean/config.toml"
check "rpm: config is %config(noreplace)" \
	test "$(rpm -qp --qf '[%{FILENAMES} %{FILEFLAGS:fflags}\n]' "$RPM1" 2>/dev/null | grep config.toml)" = "/etc/cgroupclean/config.toml cn"
check "rpm: LICENSE is %license" \
	test "$(rpm -qpL "$RPM1" 2>/dev/null)" = "/usr/share/licenses/cgroupclean/LICENSE"
check "rpm: man page is %doc" \
	test "$(rpm -qpd "$RPM1" 2>/dev/null)" = "/usr/share/man/man8/cgroupcleand.8.gz"
rpm -qp --qf '[%{FILEMODES:perms} %{FILEUSERNAME}:%{FILEGROUPNAME} %{FILENAMES}\n]' "$RPM1" >"$TMP/rpm-modes" 2>/dev/null
check "rpm: file modes and owners" diff -u - "$TMP/rpm-modes" <<'EOF'
drwxr-xr-x root:root /etc/cgroupclean
-rw-r--r-- root:root /etc/cgroupclean/config.toml
-rwxr-xr-x root:root /usr/bin/cgroupcleand
-rw-r--r-- root:root /usr/lib/systemd/catalog/cgroupclean.catalog
-rw-r--r-- root:root /usr/lib/systemd/system/cgroupcleand.service
-rw-r--r-- root:root /usr/share/cgroupclean/grafana/cgroupclean-dashboard.json
-rw-r--r-- root:root /usr/share/cgroupclean/prometheus/cgroupclean-rules.yml
-rw-r--r-- root:root /usr/share/cgroupclean/systemd/metrics.conf
-rw-r--r-- root:root /usr/share/licenses/cgroupclean/LICENSE
-rw-r--r-- root:root /usr/share/man/man8/cgroupcleand.8.gz
EOF
rpm -qp --scripts "$RPM1" >"$TMP/rpm-scripts" 2>/dev/null
check "rpm --scripts: %post, %preun, %postun, nothing else" \
	test "$(grep -c 'scriptlet (using /bin/sh)' "$TMP/rpm-scripts")" = 3
check "rpm --scripts: %post never enables or starts" \
	bash -c "! sed -n '/^postinstall/,/^preuninstall/p' '$TMP/rpm-scripts' | grep -v '^#' | grep -Eq 'enable|start|preset'"
check "rpm --scripts: %preun disables and stops on erase" grep -q 'disable --now cgroupcleand.service' "$TMP/rpm-scripts"
check "rpm --scripts: %postun try-restarts on upgrade" grep -q 'try-restart cgroupcleand.service' "$TMP/rpm-scripts"
check "rpm: %changelog present" bash -c "rpm -qp --changelog '$RPM1' 2>/dev/null | grep -q '0.1.0-1'"

# --- deb metadata ---------------------------------------------------------------------
dpkg-deb -c "$DEB1" | awk '{print $1, $2, $6}' | sed 's|^\(.\{10\}\) [^ ]* \./|\1 /|' | sort -k2 >"$TMP/deb-contents"
check "deb: files, modes and owners" diff -u - "$TMP/deb-contents" <<'EOF'
drwxr-xr-x /etc/
drwxr-xr-x /etc/cgroupclean/
-rw-r--r-- /etc/cgroupclean/config.toml
drwxr-xr-x /lib/
drwxr-xr-x /lib/systemd/
drwxr-xr-x /lib/systemd/system/
-rw-r--r-- /lib/systemd/system/cgroupcleand.service
drwxr-xr-x /usr/
drwxr-xr-x /usr/bin/
-rwxr-xr-x /usr/bin/cgroupcleand
drwxr-xr-x /usr/lib/
drwxr-xr-x /usr/lib/systemd/
drwxr-xr-x /usr/lib/systemd/catalog/
-rw-r--r-- /usr/lib/systemd/catalog/cgroupclean.catalog
drwxr-xr-x /usr/share/
drwxr-xr-x /usr/share/cgroupclean/
drwxr-xr-x /usr/share/cgroupclean/grafana/
-rw-r--r-- /usr/share/cgroupclean/grafana/cgroupclean-dashboard.json
drwxr-xr-x /usr/share/cgroupclean/prometheus/
-rw-r--r-- /usr/share/cgroupclean/prometheus/cgroupclean-rules.yml
drwxr-xr-x /usr/share/cgroupclean/systemd/
-rw-r--r-- /usr/share/cgroupclean/systemd/metrics.conf
drwxr-xr-x /usr/share/doc/
drwxr-xr-x /usr/share/doc/cgroupclean/
-rw-r--r-- /usr/share/doc/cgroupclean/changelog.Debian.gz
-rw-r--r-- /usr/share/doc/cgroupclean/copyright
drwxr-xr-x /usr/share/lintian/
drwxr-xr-x /usr/share/lintian/overrides/
-rw-r--r-- /usr/share/lintian/overrides/cgroupclean
drwxr-xr-x /usr/share/man/
drwxr-xr-x /usr/share/man/man8/
-rw-r--r-- /usr/share/man/man8/cgroupcleand.8.gz
EOF
check "deb: conffiles is the config" test "$(dpkg-deb --info "$DEB1" conffiles)" = "/etc/cgroupclean/config.toml"
check "deb: changelog.Debian.gz is a Debian changelog" \
	bash -c "dpkg-deb --fsys-tarfile '$DEB1' | tar -xOf - ./usr/share/doc/cgroupclean/changelog.Debian.gz | gzip -dc | head -1 | grep -q '^cgroupclean (0.1.0-1) unstable; urgency=medium'"

# --- deb on this host -----------------------------------------------------------------------
export DEBIAN_FRONTEND=noninteractive
# mode owner:group path, of installed files.
statf() { stat -c '%A %U:%G %n' "$@"; }
if dpkg -i "$DEB1" >"$TMP/dpkg.log" 2>&1; then ok "dpkg -i 0.1.0"; else cat "$TMP/dpkg.log"; bad "dpkg -i 0.1.0"; fi
check "dpkg -i: installed files, modes and owners" diff -u - <(statf /usr/bin/cgroupcleand \
	/lib/systemd/system/cgroupcleand.service /etc/cgroupclean /etc/cgroupclean/config.toml \
	/usr/lib/systemd/catalog/cgroupclean.catalog /usr/share/man/man8/cgroupcleand.8.gz \
	/usr/share/doc/cgroupclean/copyright /usr/share/doc/cgroupclean/changelog.Debian.gz \
	/usr/share/lintian/overrides/cgroupclean 2>&1) <<'EOF'
-rwxr-xr-x root:root /usr/bin/cgroupcleand
-rw-r--r-- root:root /lib/systemd/system/cgroupcleand.service
drwxr-xr-x root:root /etc/cgroupclean
-rw-r--r-- root:root /etc/cgroupclean/config.toml
-rw-r--r-- root:root /usr/lib/systemd/catalog/cgroupclean.catalog
-rw-r--r-- root:root /usr/share/man/man8/cgroupcleand.8.gz
-rw-r--r-- root:root /usr/share/doc/cgroupclean/copyright
-rw-r--r-- root:root /usr/share/doc/cgroupclean/changelog.Debian.gz
-rw-r--r-- root:root /usr/share/lintian/overrides/cgroupclean
EOF
check "installed unit is systemd/cgroupcleand.service" cmp -s systemd/cgroupcleand.service /lib/systemd/system/cgroupcleand.service
check "installed config is $CONFIG_SRC" cmp -s "$CONFIG_SRC" /etc/cgroupclean/config.toml
check "installed catalog is $CATALOG_SRC" cmp -s "$CATALOG_SRC" /usr/lib/systemd/catalog/cgroupclean.catalog
check "installed man page is packaging/man/cgroupcleand.8" \
	bash -c "gzip -dc /usr/share/man/man8/cgroupcleand.8.gz | cmp -s - packaging/man/cgroupcleand.8"
check "cgroupcleand version prints 0.1.0" bash -c "/usr/bin/cgroupcleand version | grep -q '0\.1\.0'"
check "install did not enable the unit" test ! -e /etc/systemd/system/multi-user.target.wants/cgroupcleand.service
check "metrics drop-in shipped, not active" bash -c "cmp -s packaging/systemd/metrics.conf /usr/share/cgroupclean/systemd/metrics.conf && test ! -e /etc/systemd/system/cgroupcleand.service.d/metrics.conf && test ! -e /lib/systemd/system/cgroupcleand.service.d"
check "alerting rules and dashboard shipped as in the repository" bash -c "cmp -s packaging/prometheus/cgroupclean-rules.yml /usr/share/cgroupclean/prometheus/cgroupclean-rules.yml && cmp -s packaging/grafana/cgroupclean-dashboard.json /usr/share/cgroupclean/grafana/cgroupclean-dashboard.json"
check "dpkg --verify clean" dpkg --verify cgroupclean

# The operator edits the config, adds a file of their own and enables the
# unit (systemctl enable works on unit files without a running systemd).
printf '\n# operator edit %s\n' "$$" >>/etc/cgroupclean/config.toml
cp /etc/cgroupclean/config.toml "$TMP/operator-config.toml"
echo "not the package's" >/etc/cgroupclean/operator-notes.txt
systemctl enable cgroupcleand.service >/dev/null 2>&1
check "operator enabled the unit" test -L /etc/systemd/system/multi-user.target.wants/cgroupcleand.service

if dpkg -i "$DEB2" >"$TMP/dpkg.log" 2>&1; then ok "dpkg -i 0.1.1 over 0.1.0"; else cat "$TMP/dpkg.log"; bad "dpkg -i 0.1.1"; fi
check "upgrade: version 0.1.1 installed" test "$(dpkg-query -W -f '${Version}' cgroupclean)" = 0.1.1-1
check "upgrade: operator's config survives byte for byte" cmp -s "$TMP/operator-config.toml" /etc/cgroupclean/config.toml
check "upgrade: still enabled" test -L /etc/systemd/system/multi-user.target.wants/cgroupcleand.service

# 0.1.2 ships a changed config: dpkg would ask; --force-confold keeps the
# operator's and puts the new one beside it.
if dpkg -i --force-confold "$DEB3" >"$TMP/dpkg.log" 2>&1; then ok "dpkg -i --force-confold 0.1.2 (changed shipped config)"; else cat "$TMP/dpkg.log"; bad "dpkg -i 0.1.2"; fi
check "upgrade with changed shipped config: operator's config survives" cmp -s "$TMP/operator-config.toml" /etc/cgroupclean/config.toml
check "upgrade with changed shipped config: new one is config.toml.dpkg-dist" cmp -s "$TMP/config-v3.toml" /etc/cgroupclean/config.toml.dpkg-dist
rm -f /etc/cgroupclean/config.toml.dpkg-dist

if dpkg -r cgroupclean >"$TMP/dpkg.log" 2>&1; then ok "dpkg -r"; else cat "$TMP/dpkg.log"; bad "dpkg -r"; fi
check "remove: binary and unit gone" test ! -e /usr/bin/cgroupcleand -a ! -e /lib/systemd/system/cgroupcleand.service
check "remove: unit disabled" test ! -L /etc/systemd/system/multi-user.target.wants/cgroupcleand.service
check "remove: config kept" cmp -s "$TMP/operator-config.toml" /etc/cgroupclean/config.toml
check "remove: state is config-files" test "$(dpkg-query -W -f '${Status}' cgroupclean)" = "deinstall ok config-files"

if dpkg --purge cgroupclean >"$TMP/dpkg.log" 2>&1; then ok "dpkg --purge"; else cat "$TMP/dpkg.log"; bad "dpkg --purge"; fi
check "purge: package gone" bash -c "! dpkg-query -W -f '\${Status}' cgroupclean 2>/dev/null | grep -q ok"
check "purge: conffile removed" test ! -e /etc/cgroupclean/config.toml
check "purge: operator's own file kept" test -f /etc/cgroupclean/operator-notes.txt
check "purge: says what it kept" grep -q 'kept /etc/cgroupclean' "$TMP/dpkg.log"
check "purge: deb-systemd-helper state gone" \
	bash -c "! ls /var/lib/systemd/deb-systemd-helper-enabled/ 2>/dev/null | grep -q cgroupcleand"
rm -f /etc/cgroupclean/operator-notes.txt
rmdir /etc/cgroupclean

# --- scratch roots: which systemd calls the scripts make -----------------------------------
# fakeroot DIR: busybox as /bin/sh and friends, logging fakes of the systemd
# tools, /run/systemd/system so that the scripts take their systemd branch.
fakeroot() {
	local r=$1
	mkdir -p "$r/bin" "$r/usr/bin" "$r/sbin" "$r/usr/sbin" "$r/dev" "$r/tmp" "$r/run/systemd/system" "$r/etc"
	cp "$BUSYBOX" "$r/bin/busybox"
	for a in sh ash cat rm mkdir test [ echo true ln ls grep sed; do ln -sf busybox "$r/bin/$a"; done
	for a in systemctl deb-systemd-helper deb-systemd-invoke; do
		printf '#!/bin/sh\necho "%s $*" >>/systemd-calls.log\n' "$a" >"$r/usr/bin/$a"
		chmod 755 "$r/usr/bin/$a"
	done
	# dpkg wants these on PATH inside the root.
	for a in ldconfig start-stop-daemon; do ln -sf /bin/true "$r/sbin/$a"; done
	: >"$r/systemd-calls.log"
}
calls() { cat "$1/systemd-calls.log"; : >"$1/systemd-calls.log"; }

# deb, dpkg --root: maintainer scripts run chrooted in the scratch root.
D=$TMP/debroot
fakeroot "$D"
mkdir -p "$D/var/lib/dpkg/info" "$D/var/lib/dpkg/updates" "$D/var/lib/dpkg/triggers"
: >"$D/var/lib/dpkg/status"
dpkgr() { PATH=/usr/sbin:/usr/bin:/sbin:/bin dpkg --root="$D" --force-depends --force-not-root "$@" >"$TMP/dpkgr.log" 2>&1 || { cat "$TMP/dpkgr.log"; return 1; }; }
check "dpkg --root: install 0.1.0" dpkgr -i "$DEB1"
check "deb postinst (install): update-state + daemon-reload, no enable/start" diff -u - <(calls "$D") <<'EOF'
deb-systemd-helper update-state cgroupcleand.service
systemctl --system daemon-reload
EOF
check "dpkg --root: upgrade to 0.1.1" dpkgr -i "$DEB2"
check "deb scripts (upgrade): nothing stopped, try-restart (restarts only if running)" diff -u - <(calls "$D") <<'EOF'
deb-systemd-helper update-state cgroupcleand.service
systemctl --system daemon-reload
deb-systemd-invoke try-restart cgroupcleand.service
EOF
check "dpkg --root: remove" dpkgr -r cgroupclean
check "deb prerm/postrm (remove): stop, disable, daemon-reload" diff -u - <(calls "$D") <<'EOF'
deb-systemd-invoke stop cgroupcleand.service
deb-systemd-helper disable cgroupcleand.service
systemctl --system daemon-reload
EOF
check "dpkg --root: purge" dpkgr --purge cgroupclean
check "deb postrm (purge): only deb-systemd-helper purge" diff -u - <(calls "$D") <<'EOF'
deb-systemd-helper purge cgroupcleand.service
EOF

# rpm --root: scriptlets run chrooted with busybox's sh.
R=$TMP/rpmroot
fakeroot "$R"
check "rpm --root --initdb" rpm --root "$R" --dbpath /var/lib/rpm --initdb
rpmr() { rpm --root "$R" --dbpath /var/lib/rpm --nodeps "$@" >"$TMP/rpmr.log" 2>&1 || { cat "$TMP/rpmr.log"; return 1; }; }
check "rpm --root -i 0.1.0" rpmr -i "$RPM1"
check "rpm %post (install): daemon-reload only" diff -u - <(calls "$R") <<'EOF'
systemctl daemon-reload
EOF
check "rpm --root: installed files and modes" diff -u - <(cd "$R" && statf usr/bin/cgroupcleand \
	usr/lib/systemd/system/cgroupcleand.service etc/cgroupclean etc/cgroupclean/config.toml \
	usr/lib/systemd/catalog/cgroupclean.catalog usr/share/man/man8/cgroupcleand.8.gz \
	usr/share/licenses/cgroupclean/LICENSE 2>&1) <<'EOF'
-rwxr-xr-x root:root usr/bin/cgroupcleand
-rw-r--r-- root:root usr/lib/systemd/system/cgroupcleand.service
drwxr-xr-x root:root etc/cgroupclean
-rw-r--r-- root:root etc/cgroupclean/config.toml
-rw-r--r-- root:root usr/lib/systemd/catalog/cgroupclean.catalog
-rw-r--r-- root:root usr/share/man/man8/cgroupcleand.8.gz
-rw-r--r-- root:root usr/share/licenses/cgroupclean/LICENSE
EOF
check "rpm --root: rpm -V clean" rpm --root "$R" --dbpath /var/lib/rpm -V cgroupclean
printf '\n# operator edit\n' >>"$R/etc/cgroupclean/config.toml"
cp "$R/etc/cgroupclean/config.toml" "$TMP/operator-config-rpm.toml"
check "rpm --root -U 0.1.1" rpmr -U "$RPM2"
check "rpm scriptlets (upgrade): daemon-reload, try-restart, no disable" diff -u - <(calls "$R") <<'EOF'
systemctl daemon-reload
systemctl daemon-reload
systemctl try-restart cgroupcleand.service
EOF
check "rpm upgrade: operator's config survives" cmp -s "$TMP/operator-config-rpm.toml" "$R/etc/cgroupclean/config.toml"
check "rpm --root -U 0.1.2 (changed shipped config)" rpmr -U "$RPM3"
calls "$R" >/dev/null
check "rpm upgrade with changed shipped config: operator's config survives" cmp -s "$TMP/operator-config-rpm.toml" "$R/etc/cgroupclean/config.toml"
check "rpm upgrade with changed shipped config: new one is config.toml.rpmnew" cmp -s "$TMP/config-v3.toml" "$R/etc/cgroupclean/config.toml.rpmnew"
check "rpm --root -e" rpmr -e cgroupclean
check "rpm %preun/%postun (erase): disable --now, daemon-reload" diff -u - <(calls "$R") <<'EOF'
systemctl --no-reload disable --now cgroupcleand.service
systemctl daemon-reload
EOF
check "rpm erase: binary gone" test ! -e "$R/usr/bin/cgroupcleand"
check "rpm erase: edited config saved as config.toml.rpmsave" cmp -s "$TMP/operator-config-rpm.toml" "$R/etc/cgroupclean/config.toml.rpmsave"

echo "package-test: $pass passed, $fail failed"
[ "$fail" = 0 ]
