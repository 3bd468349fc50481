package packaging

import (
	"bufio"
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/cgroupclean/cgroupclean/daemon"
	"github.com/cgroupclean/cgroupclean/internal/testbed"
)

// maxExposure is the highest `systemd-analyze security` exposure (0-10)
// the unit may have. It scores 1.2 now; what keeps it above 0 is running as
// root, CAP_KILL, AF_UNIX, and writable cgroupfs, which the job needs.
const maxExposure = 1.5

// hostUnits holds the host's systemd units, which verify needs for
// multi-user.target and friends.
const hostUnits = "/usr/lib/systemd/system"

func needSystemdAnalyze(t *testing.T) string {
	t.Helper()
	p, err := exec.LookPath("systemd-analyze")
	testbed.Need(t, err == nil, "systemd-analyze (apt-get install systemd)")
	return p
}

// TestUnitVerify runs `systemd-analyze verify` on the unit in a scratch
// root that has the host's units (for multi-user.target and friends), an
// executable at the ExecStart/ExecReload paths and the man page on MANPATH
// (verify checks Documentation=man:...). Any output is a failure: verify
// exits 0 on unknown keys and only prints them.
func TestUnitVerify(t *testing.T) {
	needSystemdAnalyze(t)
	_, err := os.Stat(filepath.Join(hostUnits, "multi-user.target"))
	testbed.Need(t, err == nil, "systemd's units in "+hostUnits)

	root := t.TempDir()
	unitDir := filepath.Join(root, "usr/lib/systemd/system")
	mustRun(t, "mkdir", "-p", unitDir)
	copyFile(t, filepath.Join(repoRoot, unitSource), filepath.Join(unitDir, unitName))
	if out, err := verifyInRoot(t, root); err != nil || len(bytes.TrimSpace(out)) > 0 {
		t.Errorf("systemd-analyze verify: err=%v\n%s", err, out)
	}
}

// verifyInRoot runs `systemd-analyze verify` on the unit laid out in root
// (in usr/lib/systemd/system, drop-ins in etc), after adding the host's
// units without replacing those, /bin and /lib links, an
// executable at the ExecStart/ExecReload paths and the man page on
// MANPATH.
func verifyInRoot(t *testing.T, root string) ([]byte, error) {
	t.Helper()
	sa := needSystemdAnalyze(t)
	mustRun(t, "mkdir", "-p", root+"/usr/lib/systemd/system", root+"/usr/bin", root+"/man/man8")
	mustRun(t, "sh", "-c", "cp -an "+hostUnits+"/. "+root+"/usr/lib/systemd/system/")
	for _, l := range [][2]string{{"usr/bin", "bin"}, {"usr/lib", "lib"}} {
		if err := os.Symlink(l[0], filepath.Join(root, l[1])); err != nil {
			t.Fatal(err)
		}
	}
	for _, exe := range []string{"cgroupcleand", "kill"} {
		if err := os.WriteFile(filepath.Join(root, "usr/bin", exe), []byte("#!/bin/sh\n"), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	copyFile(t, "man/cgroupcleand.8", filepath.Join(root, "man/man8/cgroupcleand.8"))
	cmd := exec.Command(sa, "verify", "--root="+root, unitName)
	cmd.Env = append(os.Environ(), "MANPATH="+filepath.Join(root, "man"), "SYSTEMD_LOG_COLOR=0")
	return cmd.CombinedOutput()
}

// securityExposure runs `systemd-analyze security --offline=true` with
// args (a unit file, or --root and a unit name) and returns the overall
// exposure level and the whole output.
func securityExposure(t *testing.T, args ...string) (float64, []byte) {
	t.Helper()
	args = append([]string{"security", "--offline=true", "--no-pager"}, args...)
	cmd := exec.Command(needSystemdAnalyze(t), args...)
	cmd.Env = append(os.Environ(), "SYSTEMD_COLORS=0")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("systemd-analyze security: %v\n%s", err, out)
	}
	m := regexp.MustCompile(`Overall exposure level for \S+: ([0-9.]+)`).FindSubmatch(out)
	if m == nil {
		t.Fatalf("no exposure level in:\n%s", out)
	}
	v, err := strconv.ParseFloat(string(m[1]), 64)
	if err != nil {
		t.Fatal(err)
	}
	return v, out
}

// TestUnitSecurity checks the exposure score of the unit file as written.
func TestUnitSecurity(t *testing.T) {
	score, out := securityExposure(t, filepath.Join(repoRoot, unitSource))
	t.Logf("systemd-analyze security exposure: %.1f", score)
	if score > maxExposure {
		t.Errorf("exposure %.1f > %.1f:\n%s", score, maxExposure, out)
	}
}

// TestUnitDirectives pins the settings the daemon and the operators rely
// on, and the ones the unit must not have.
func TestUnitDirectives(t *testing.T) {
	keys := parseUnit(t, filepath.Join(repoRoot, unitSource))
	for _, tc := range []struct {
		key, want string // want "" = key must be absent
		why       string
	}{
		{"Service.Type", "notify", "daemon reports readiness with sd_notify"},
		{"Service.WatchdogSec", "2min", "daemon pings at half"},
		{"Service.Restart", "on-failure", ""},
		{"Service.RestartPreventExitStatus", "2", "run exits 2 on a config it cannot load: no restart loop"},
		{"Service.Environment", "GOTRACEBACK=crash", "a panic or the watchdog's SIGABRT must not exit 2, the no-restart status"},
		{"Service.ExecStart", "/usr/bin/cgroupcleand run --config /etc/cgroupclean/config.toml", "path the packages install"},
		{"Service.ExecReload", "/bin/kill -HUP $MAINPID", "SIGHUP reloads the config"},
		{"Unit.After", "crio.service containerd.service kubelet.service dbus.service", ""},
		{"Unit.Requires", "", "a runtime restart must not stop the daemon"},
		{"Unit.BindsTo", "", "a runtime restart must not stop the daemon"},
		{"Unit.PartOf", "", "a runtime restart must not restart the daemon"},
		{"Service.CapabilityBoundingSet", "CAP_KILL", "only signalling leftover processes needs a capability"},
		{"Service.ProtectSystem", "strict", ""},
		{"Service.ReadWritePaths", "/sys/fs/cgroup /proc/sys/vm/drop_caches", "the only writes the job does"},
		{"Service.ProtectControlGroups", "", "would make /sys/fs/cgroup read-only"},
		{"Service.ProtectKernelTunables", "yes", "drop_caches is re-opened by ReadWritePaths"},
		{"Service.ProtectHome", "yes", ""},
		{"Service.PrivateTmp", "yes", ""},
		{"Service.NoNewPrivileges", "yes", ""},
		{"Service.RestrictAddressFamilies", "AF_UNIX", "CRI, D-Bus, journald, sd_notify"},
		{"Service.IPAddressDeny", "any", ""},
		{"Service.SystemCallFilter", "@system-service|~@privileged @resources", ""},
		{"Service.ProtectProc", "", "would hide container processes of other UIDs"},
		{"Service.ProcSubset", "", "would hide /proc/sys"},
		{"Install.WantedBy", "multi-user.target", ""},
		{"Service.RuntimeDirectory", strings.TrimPrefix(daemon.LockDir, "/run/"), "the one-cleaner lock's directory (daemon.LockDir), writable under ProtectSystem=strict"},
		{"Service.RuntimeDirectoryMode", "0700", "only root may hold the lock"},
	} {
		t.Run(tc.key, func(t *testing.T) {
			got, ok := keys[tc.key]
			if tc.want == "" {
				if ok {
					t.Errorf("%s=%s must not be set: %s", tc.key, got, tc.why)
				}
				return
			}
			if got != tc.want {
				t.Errorf("%s=%q, want %q (%s)", tc.key, got, tc.want, tc.why)
			}
		})
	}
}

// parseUnit returns Section.Key -> value; repeated keys are joined by "|".
func parseUnit(t *testing.T, path string) map[string]string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	keys := map[string]string{}
	section := ""
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		switch {
		case line == "" || strings.HasPrefix(line, "#") || strings.HasPrefix(line, ";"):
		case strings.HasPrefix(line, "["):
			section = strings.Trim(line, "[]")
		default:
			k, v, ok := strings.Cut(line, "=")
			if !ok {
				t.Fatalf("%s: bad line %q", path, line)
			}
			key := section + "." + strings.TrimSpace(k)
			if old, ok := keys[key]; ok {
				v = old + "|" + v
			}
			keys[key] = strings.TrimSpace(v)
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return keys
}

func mustRun(t *testing.T, argv ...string) {
	t.Helper()
	if out, err := exec.Command(argv[0], argv[1:]...).CombinedOutput(); err != nil {
		t.Fatalf("%v: %v\n%s", argv, err, out)
	}
}

func copyFile(t *testing.T, src, dst string) {
	t.Helper()
	b, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(dst, b, 0o644); err != nil {
		t.Fatal(err)
	}
}
