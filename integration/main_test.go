package integration

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// cowvolBin is the path of the cowvol binary built once by TestMain (or given
// as COWVOL_BIN); empty when the environment cannot run these tests and they
// are going to skip.
var cowvolBin string

func TestMain(m *testing.M) {
	os.Exit(runMain(m))
}

func runMain(m *testing.M) int {
	if role := os.Getenv(takeoverRoleEnv); role != "" {
		return runTakeoverRole(role) // a child of the go-fuse takeover tests
	}
	if bin := os.Getenv("COWVOL_BIN"); bin != "" {
		cowvolBin = bin
		return m.Run()
	}
	if len(missingPrivileges()) == 0 || requireRoot() {
		dir, err := os.MkdirTemp("", "cowvol-bin")
		if err != nil {
			fmt.Fprintln(os.Stderr, "integration: ", err)
			return 1
		}
		defer os.RemoveAll(dir)
		// Tests run the CLI as other users too.
		if err := os.Chmod(dir, 0o755); err != nil {
			fmt.Fprintln(os.Stderr, "integration: ", err)
			return 1
		}
		bin := filepath.Join(dir, "cowvol")
		args := []string{"build", "-o", bin}
		if os.Getenv("COWVOL_DAEMON_RACE") == "1" {
			args = append(args, "-race")
		}
		args = append(args, "github.com/cowvol/cowvol/cmd/cowvol")
		cmd := exec.Command("go", args...)
		cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
		if err := cmd.Run(); err != nil {
			fmt.Fprintf(os.Stderr, "integration: go %v: %v\n", args, err)
			return 1
		}
		cowvolBin = bin
	}
	return m.Run()
}
