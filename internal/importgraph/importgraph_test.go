package importgraph

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

const module = "github.com/cowvol/cowvol/"

// rank places a package of the module in the layering: a package may
// import only packages of a lower rank (and a store's helper packages
// their store). Top-level packages not named here are front ends, like
// control; metrics observes the front ends and the engine.
func rank(pkg string) int {
	switch {
	case pkg == "integration" || strings.HasPrefix(pkg, "internal/"):
		return 50 // tests of the whole
	case strings.HasPrefix(pkg, "cmd/"):
		return 40
	case pkg == "metrics":
		return 35
	case pkg == "lifecycle":
		return 25 // runs policies over the engine; control serves its API
	case pkg == "cow":
		return 20
	case pkg == "cow/lineage":
		return 10
	case pkg == "cow/snapfmt" || pkg == "meta" || pkg == "kms" || pkg == "systemd" ||
		pkg == "cow/snapstore" || strings.HasPrefix(pkg, "cow/snapstore/"):
		return 0
	case strings.HasPrefix(pkg, "cow/"):
		return 10 // a new package under cow: below the engine
	}
	return 30 // control, fusefs and other front ends
}

// allowed reports whether pkg may import dep (both module-relative).
func allowed(pkg, dep string) bool {
	if strings.HasPrefix(pkg, "cow/snapstore/") && dep == "cow/snapstore" {
		return true
	}
	return rank(dep) < rank(pkg)
}

type listed struct {
	ImportPath string
	Imports    []string
}

// modulePackages lists the module's packages with their direct imports
// (test files' imports aside), through go list.
func modulePackages(t *testing.T) []listed {
	t.Helper()
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("go", "list", "-json", "./...")
	cmd.Dir = root
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, stderr.Bytes())
	}
	var pkgs []listed
	d := json.NewDecoder(bytes.NewReader(out))
	for {
		var p listed
		if err := d.Decode(&p); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			t.Fatal(err)
		}
		pkgs = append(pkgs, p)
	}
	return pkgs
}

// TestImportGraphIsOneWay: no package imports one at its own level or
// above; the snapshot format imports nothing of the module.
func TestImportGraphIsOneWay(t *testing.T) {
	pkgs := modulePackages(t)
	seen := map[string]bool{}
	for _, p := range pkgs {
		pkg, ok := strings.CutPrefix(p.ImportPath, module)
		if !ok {
			continue
		}
		seen[pkg] = true
		for _, imp := range p.Imports {
			dep, ok := strings.CutPrefix(imp, module)
			if !ok {
				continue
			}
			if !allowed(pkg, dep) {
				t.Errorf("%s imports %s: against the layering (rank %d imports rank %d)", pkg, dep, rank(pkg), rank(dep))
			}
			if pkg == "cow/snapfmt" {
				t.Errorf("cow/snapfmt imports %s: the format imports nothing of the module", dep)
			}
		}
	}
	// The test is only as good as its listing: the layers it names exist.
	for _, want := range []string{"cmd/cowvol", "control", "fusefs", "cow", "cow/lineage", "cow/snapfmt", "cow/snapstore", "meta", "kms"} {
		if !seen[want] {
			t.Errorf("go list did not list %s", want)
		}
	}
}

// TestLayeringRules: the rules themselves, on edges that must be refused.
func TestLayeringRules(t *testing.T) {
	for _, tt := range []struct {
		pkg, dep string
		ok       bool
	}{
		{"cmd/cowvol", "control", true},
		{"control", "cow", true},
		{"control", "lifecycle", true},
		{"lifecycle", "cow", true},
		{"lifecycle", "control", false},
		{"fusefs", "cow", true},
		{"cow", "cow/snapfmt", true},
		{"cow", "meta", true},
		{"cow/lineage", "cow/snapfmt", true},
		{"cow/snapstore/faulty", "cow/snapstore", true},
		{"cow", "control", false},
		{"cow", "fusefs", false},
		{"control", "cmd/cowvol", false},
		{"control", "fusefs", false},
		{"metrics", "fusefs", true},
		{"fusefs", "metrics", false},
		{"cow/snapfmt", "cow", false},
		{"cow/snapfmt", "meta", false},
		{"cow/snapfmt", "cow/lineage", false},
		{"cow/lineage", "cow", false},
		{"meta", "cow", false},
		{"kms", "meta", false},
		{"cow/snapstore", "cow/snapfmt", false},
	} {
		if got := allowed(tt.pkg, tt.dep); got != tt.ok {
			t.Errorf("%s -> %s allowed %v, want %v", tt.pkg, tt.dep, got, tt.ok)
		}
	}
}
