package systemd

import (
	"bufio"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// unitFile is contrib/systemd/cowvol.service, the unit that runs the
// supervisor this package serves.
const unitFile = "../contrib/systemd/cowvol.service"

// readUnit returns the [Service] settings of the unit file, every value of
// each key in order.
func readUnit(t *testing.T) map[string][]string {
	t.Helper()
	f, err := os.Open(unitFile)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	settings := map[string][]string{}
	section := ""
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		switch {
		case line == "" || strings.HasPrefix(line, "#") || strings.HasPrefix(line, ";"):
		case strings.HasPrefix(line, "["):
			section = line
		case section == "[Service]":
			k, v, ok := strings.Cut(line, "=")
			if !ok {
				t.Fatalf("%s: not a setting: %q", unitFile, line)
			}
			settings[k] = append(settings[k], v)
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return settings
}

// TestUnitFileSettings pins the settings the fd-store protocol depends on,
// and keeps out every setting that would put the daemon in a mount (or
// other) namespace, where its FUSE mount would be invisible to the host.
func TestUnitFileSettings(t *testing.T) {
	s := readUnit(t)
	want := []struct{ key, value, why string }{
		{"Type", "notify", "the supervisor sends READY=1"},
		{"NotifyAccess", "main", "only the supervisor may notify and store fds"},
		{"ExecStart", "/usr/local/bin/cowvol daemon", "the supervisor"},
		{"Restart", "on-failure", "systemd restarts a dead supervisor and hands its fds back"},
		{"FileDescriptorStorePreserve", "restart", "the store outlives restarts, not stops"},
		{"RuntimeDirectory", "cowvol", "/run/cowvol holds the control socket"},
		{"RuntimeDirectoryPreserve", "restart", "the socket's path must survive a restart, as its listener does"},
		{"StateDirectory", "cowvol", "/var/lib/cowvol"},
		{"ConfigurationDirectory", "cowvol", "/etc/cowvol holds the keyring"},
		{"KillMode", "mixed", "SIGTERM to the supervisor only"},
		{"DevicePolicy", "closed", "with /dev/fuse allowed below"},
		{"DeviceAllow", "/dev/fuse rw", "the FUSE device"},
	}
	for _, w := range want {
		if got := s[w.key]; len(got) != 1 || got[0] != w.value {
			t.Errorf("%s=%q, want %q (%s)", w.key, got, w.value, w.why)
		}
	}
	if n, err := strconv.Atoi(first(s["FileDescriptorStoreMax"])); err != nil || n < 4 {
		t.Errorf("FileDescriptorStoreMax=%q: want room for fuse, lock, control and tcp", s["FileDescriptorStoreMax"])
	}
	for _, k := range []string{"WatchdogSec", "TimeoutStopSec", "LimitNOFILE", "ExecReload"} {
		if len(s[k]) == 0 {
			t.Errorf("%s missing", k)
		}
	}
	namespaced := []string{
		"PrivateTmp", "PrivateDevices", "PrivateMounts", "PrivateNetwork", "PrivateUsers", "PrivateIPC",
		"PrivatePIDs", "ProtectSystem", "ProtectHome", "ProtectKernelTunables", "ProtectKernelModules",
		"ProtectKernelLogs", "ProtectControlGroups", "ProtectProc", "ProcSubset", "ProtectHostname",
		"ReadOnlyPaths", "ReadWritePaths", "InaccessiblePaths", "ExecPaths", "NoExecPaths",
		"TemporaryFileSystem", "BindPaths", "BindReadOnlyPaths", "RootDirectory", "RootImage",
		"MountImages", "ExtensionImages", "ExtensionDirectories", "MountFlags", "LogNamespace",
		"NetworkNamespacePath", "IPCNamespacePath", "DynamicUser", "MountAPIVFS",
	}
	for _, k := range namespaced {
		if v, ok := s[k]; ok {
			t.Errorf("%s=%q: puts the daemon in its own namespace; the FUSE mount must be the host's", k, v)
		}
	}
}

func first(v []string) string {
	if len(v) == 0 {
		return ""
	}
	return v[0]
}

// TestUnitFileVerifies runs systemd-analyze verify on the unit (with
// ExecStart pointed at an executable that exists here). It needs the
// systemd package installed, not systemd running. Only systemd older than
// 254 may complain, and only about FileDescriptorStorePreserve=, which it
// does not know and whose behaviour it has anyway. Without systemd-analyze
// it skips, and fails under COWVOL_REQUIRE_ROOT=1 (CI installs systemd).
func TestUnitFileVerifies(t *testing.T) {
	analyze, err := exec.LookPath("systemd-analyze")
	if err != nil {
		if os.Getenv("COWVOL_REQUIRE_ROOT") == "1" {
			t.Fatal("systemd-analyze not installed (the systemd package; make prereqs installs it)")
		}
		t.Skip("systemd-analyze not installed (the systemd package)")
	}
	unit, err := os.ReadFile(unitFile)
	if err != nil {
		t.Fatal(err)
	}
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	text := strings.ReplaceAll(string(unit), "ExecStart=/usr/local/bin/cowvol ", "ExecStart="+exe+" ")
	path := filepath.Join(t.TempDir(), "cowvol.service")
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(analyze, "verify", path)
	cmd.Env = append(os.Environ(), "SYSTEMD_LOG_COLOR=0", "SYSTEMD_PAGER=")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Errorf("systemd-analyze verify: %v", err)
	}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		if line == "" || strings.Contains(line, "Unknown key 'FileDescriptorStorePreserve'") ||
			strings.Contains(line, "Unknown key name 'FileDescriptorStorePreserve'") {
			continue
		}
		t.Errorf("systemd-analyze verify: %s", line)
	}
}
