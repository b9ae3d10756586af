package main

import (
	"bytes"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// events builds go test -json lines.
func events(lines ...string) string { return strings.Join(lines, "\n") + "\n" }

const (
	passRun = `{"Action":"run","Package":"p","Test":"TestA"}
{"Action":"output","Package":"p","Test":"TestA","Output":"=== RUN   TestA\n"}
{"Action":"pass","Package":"p","Test":"TestA"}`
	skipRun = `{"Action":"output","Package":"p","Test":"TestB","Output":"=== RUN   TestB\n"}
{"Action":"output","Package":"p","Test":"TestB","Output":"    b_test.go:9: needs root\n"}
{"Action":"output","Package":"p","Test":"TestB","Output":"--- SKIP: TestB (0.00s)\n"}
{"Action":"skip","Package":"p","Test":"TestB"}`
	optInSkip = `{"Action":"output","Package":"p","Test":"TestBig","Output":"    big_test.go:9: COWVOL_BIG=1 runs it\n"}
{"Action":"skip","Package":"p","Test":"TestBig"}`
	failRun = `{"Action":"output","Package":"p","Test":"TestC","Output":"    c_test.go:9: boom\n"}
{"Action":"fail","Package":"p","Test":"TestC"}`
	pkgPass = `{"Action":"output","Package":"p","Output":"ok  \tp\t0.1s\n"}
{"Action":"pass","Package":"p"}`
	pkgFail  = `{"Action":"fail","Package":"p"}`
	buildBad = `{"Action":"build-output","Package":"q","Output":"q.go:1: syntax error\n"}
{"Action":"build-fail","Package":"q"}
{"Action":"fail","Package":"q"}`
)

func TestSummary(t *testing.T) {
	tests := []struct {
		name       string
		json       string
		require    bool
		wantFail   bool
		wantLast   string
		wantOutput []string
	}{
		{"all pass", events(passRun, pkgPass), false, false, "testreport: 1 passed, 0 failed, 0 skipped", nil},
		{"skip is loud", events(passRun, skipRun, pkgPass), false, false, "testreport: 1 passed, 0 failed, 1 skipped",
			[]string{"1 TESTS SKIPPED", "SKIP p TestB: b_test.go:9: needs root"}},
		{"skip fails when required", events(passRun, skipRun, pkgPass), true, true, "testreport: 1 passed, 0 failed, 1 skipped",
			[]string{"COWVOL_REQUIRE_ROOT=1: a skipped test is a failure"}},
		{"opt-in skip is no failure", events(passRun, optInSkip, pkgPass), true, false, "testreport: 1 passed, 0 failed, 1 skipped",
			[]string{"1 opt-in tests skipped, as they should be: TestBig"}},
		{"a failure", events(passRun, failRun, pkgFail), false, true, "testreport: 1 passed, 1 failed, 0 skipped",
			[]string{"FAIL p TestC"}},
		{"a build failure counts", events(passRun, pkgPass, buildBad), false, true, "testreport: 1 passed, 1 failed, 0 skipped", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.require {
				t.Setenv("COWVOL_REQUIRE_ROOT", "1")
			} else {
				t.Setenv("COWVOL_REQUIRE_ROOT", "")
			}
			file := filepath.Join(t.TempDir(), "run.json")
			if err := os.WriteFile(file, []byte(tt.json), 0o644); err != nil {
				t.Fatal(err)
			}
			var out bytes.Buffer
			failed, err := summarize([]string{file}, regexp.MustCompile(`^TestBig$`), &out)
			if err != nil {
				t.Fatal(err)
			}
			if failed != tt.wantFail {
				t.Errorf("failed = %v, want %v\n%s", failed, tt.wantFail, out.String())
			}
			lines := strings.Split(strings.TrimSpace(out.String()), "\n")
			if last := lines[len(lines)-1]; last != tt.wantLast {
				t.Errorf("last line %q, want %q", last, tt.wantLast)
			}
			for _, w := range tt.wantOutput {
				if !strings.Contains(out.String(), w) {
					t.Errorf("output lacks %q:\n%s", w, out.String())
				}
			}
		})
	}
}

// TestRunRecordsAndPrints runs a command that prints events (as go test
// -json does), and checks the record, the printed package and the exit.
func TestRunRecordsAndPrints(t *testing.T) {
	tests := []struct {
		name     string
		json     string
		exit     string
		wantErr  bool
		want     []string
		wantNone []string
	}{
		{"passing package: closing line and skips", events(passRun, skipRun, pkgPass), "0", false,
			[]string{"--- SKIP: TestB: b_test.go:9: needs root", "ok  \tp\t0.1s"}, []string{"=== RUN"}},
		{"failing package printed in full", events(passRun, failRun, pkgFail), "1", true,
			[]string{"c_test.go:9: boom", "=== RUN   TestA"}, nil},
		{"a failure although the command exits 0", events(failRun, pkgFail), "0", true, nil, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			in := filepath.Join(dir, "in.json")
			if err := os.WriteFile(in, []byte(tt.json), 0o644); err != nil {
				t.Fatal(err)
			}
			var rec, out bytes.Buffer
			err := run([]string{"sh", "-c", `cat "$0"; exit "$1"`, in, tt.exit}, &rec, &out, false)
			if (err != nil) != tt.wantErr {
				t.Errorf("err %v, want error %v", err, tt.wantErr)
			}
			if rec.String() != tt.json {
				t.Errorf("record differs from the events:\n%s", rec.String())
			}
			for _, w := range tt.want {
				if !strings.Contains(out.String(), w) {
					t.Errorf("output lacks %q:\n%s", w, out.String())
				}
			}
			for _, w := range tt.wantNone {
				if strings.Contains(out.String(), w) {
					t.Errorf("output has %q:\n%s", w, out.String())
				}
			}
		})
	}
}
