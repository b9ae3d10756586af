package integration

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestMakeInstall runs `make install` into a temporary DESTDIR (with its
// own binary path, so the repository's bin/ is left alone) and checks that
// every file is there, that the unit runs the installed binary, that the
// bash completion script loads in bash and registers cowvol, and that
// `make uninstall` removes them all again. It needs make and bash, not root.
func TestMakeInstall(t *testing.T) {
	for _, cmd := range []string{"make", "bash"} {
		if _, err := exec.LookPath(cmd); err != nil {
			missingPrereq(t, "%s not found", cmd)
		}
	}
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	tmp := t.TempDir()
	dest := filepath.Join(tmp, "dest")
	vars := []string{"-C", root, "DESTDIR=" + dest, "PREFIX=/opt/cowvol", "BIN=" + filepath.Join(tmp, "cowvol")}
	runMake(t, append([]string{"install"}, vars...)...)

	files := []string{
		"/opt/cowvol/bin/cowvol",
		"/opt/cowvol/lib/systemd/system/cowvol.service",
		"/opt/cowvol/share/man/man8/cowvol.8",
		"/opt/cowvol/share/bash-completion/completions/cowvol",
		"/opt/cowvol/share/zsh/site-functions/_cowvol",
		"/opt/cowvol/share/fish/vendor_completions.d/cowvol.fish",
	}
	for _, f := range files {
		fi, err := os.Stat(filepath.Join(dest, f))
		if err != nil {
			t.Errorf("make install: %v", err)
			continue
		}
		if fi.Size() == 0 {
			t.Errorf("make install: %s is empty", f)
		}
	}
	if fi, err := os.Stat(filepath.Join(dest, files[0])); err == nil && fi.Mode()&0o111 == 0 {
		t.Errorf("%s is not executable: %v", files[0], fi.Mode())
	}
	unit, err := os.ReadFile(filepath.Join(dest, files[1]))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(unit), "\nExecStart=/opt/cowvol/bin/cowvol daemon\n") {
		t.Errorf("installed unit does not run the installed binary:\n%s", grepLines(string(unit), "ExecStart="))
	}
	man, err := os.ReadFile(filepath.Join(dest, files[2]))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(man), ".TH cowvol 8") || !strings.Contains(string(man), "create-snapshot") {
		t.Errorf("man page lacks its title or the create-snapshot verb:\n%.400s", man)
	}

	out, err := exec.Command("bash", "-c", `source "$1" && complete -p cowvol`, "bash", filepath.Join(dest, files[3])).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "-F _cowvol cowvol") {
		t.Errorf("bash: source the completion script; complete -p cowvol: %v\n%s", err, out)
	}

	runMake(t, append([]string{"uninstall"}, vars...)...)
	for _, f := range files {
		if _, err := os.Stat(filepath.Join(dest, f)); !os.IsNotExist(err) {
			t.Errorf("make uninstall left %s (%v)", f, err)
		}
	}
}

func runMake(t *testing.T, args ...string) {
	t.Helper()
	out, err := exec.Command("make", args...).CombinedOutput()
	if err != nil {
		t.Fatalf("make %s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

// grepLines returns the lines of s that contain sub.
func grepLines(s, sub string) string {
	var lines []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			lines = append(lines, l)
		}
	}
	return strings.Join(lines, "\n")
}
