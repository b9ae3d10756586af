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
	crashRun = `{"Action":"run","Package":"p","Test":"TestD"}
{"Action":"output","Package":"p","Test":"TestD","Output":"fatal error: concurrent map writes\n"}`
	pkgFail  = `{"Action":"fail","Package":"p"}`
	buildBad = `{"Action":"build-output","Package":"q","Output":"q.go:1: syntax error\n"}
{"Action":"build-fail","Package":"q"}
{"Action":"fail","Package":"q"}`
)

// record is one recorded run, as `make test` keeps it: name.json.
type record struct{ name, text string }

// one is a single recorded run named "run".
func one(text string) []record { return []record{{"run", text}} }

// sample reads a captured go test output from testdata.
func sample(t *testing.T, name string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestSummary(t *testing.T) {
	const integration = "github.com/cowvol/cowvol/integration"
	tests := []struct {
		name       string
		records    []record
		require    bool
		wantFail   bool
		wantLast   string
		wantOutput []string
	}{
		{"all pass", one(events(passRun, pkgPass)), false, false, "testreport: 1 passed, 0 failed, 0 skipped", nil},
		{"skip is loud", one(events(passRun, skipRun, pkgPass)), false, false, "testreport: 1 passed, 0 failed, 1 skipped",
			[]string{"1 TESTS SKIPPED", "SKIP p TestB [run]: b_test.go:9: needs root"}},
		{"skip fails when required", one(events(passRun, skipRun, pkgPass)), true, true, "testreport: 1 passed, 0 failed, 1 skipped",
			[]string{"COWVOL_REQUIRE_ROOT=1: a skipped test is a failure"}},
		{"opt-in skip is no failure", one(events(passRun, optInSkip, pkgPass)), true, false, "testreport: 1 passed, 0 failed, 1 skipped",
			[]string{"1 opt-in tests skipped, as they should be: TestBig"}},
		{"a failure", one(events(passRun, failRun, pkgFail)), false, true, "testreport: 1 passed, 1 failed, 0 skipped",
			[]string{"FAIL p TestC [run]\n"}},
		{"a build failure counts", one(events(passRun, pkgPass, buildBad)), false, true, "testreport: 1 passed, 1 failed, 0 skipped",
			[]string{"FAIL q [run]: no test failed"}},
		{"a timeout names the test and the subtest it interrupted", one(sample(t, "timeout-subtest.json")), false, true,
			"testreport: 1 passed, 2 failed, 0 skipped",
			[]string{"FAIL example.com/to TestSlow [run]: timed out after 2s",
				"FAIL example.com/to TestSlow/sub_step [run]: timed out after 2s"}},
		{"a timeout names the parallel tests running, not the one still waiting", one(sample(t, "timeout-parallel.json")), false, true,
			"testreport: 1 passed, 2 failed, 0 skipped",
			[]string{"FAIL example.com/to/par TestParA [run]: timed out after 2s",
				"FAIL example.com/to/par TestParC [run]: timed out after 2s"}},
		{"a timeout in plain go test output", one(sample(t, "timeout-parallel.txt")), false, true,
			"testreport: 0 passed, 2 failed, 0 skipped",
			[]string{"FAIL example.com/to/par TestParA [run]: timed out after 2s",
				"FAIL example.com/to/par TestParC [run]: timed out after 2s"}},
		{"the integration timeout CI printed", one(sample(t, "timeout-integration.txt")), false, true,
			"testreport: 0 passed, 2 failed, 0 skipped",
			[]string{"FAIL " + integration + " TestTortureSnapshotFillsDataDir [run]: timed out after 12m0s",
				"FAIL " + integration + " TestTortureSnapshotFillsDataDir/delete_the_failed_snapshot_and_vol2:_space_comes_back;_a_new_snapshot_of_vol1_completes [run]: timed out after 12m0s"}},
		{"a crash names the test it interrupted", one(events(passRun, crashRun, pkgFail)), false, true,
			"testreport: 1 passed, 1 failed, 0 skipped",
			[]string{"FAIL p TestD [run]: did not finish"}},
		{"one run's pass does not hide another's failure", []record{
			{"integration", sample(t, "timeout-subtest.json")},
			{"race-daemon", events(
				`{"Action":"run","Package":"example.com/to","Test":"TestSlow"}`,
				`{"Action":"pass","Package":"example.com/to","Test":"TestSlow"}`,
				`{"Action":"pass","Package":"example.com/to"}`)},
		}, false, true, "testreport: 2 passed, 2 failed, 0 skipped",
			[]string{"FAIL example.com/to TestSlow [integration]: timed out after 2s"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.require {
				t.Setenv("COWVOL_REQUIRE_ROOT", "1")
			} else {
				t.Setenv("COWVOL_REQUIRE_ROOT", "")
			}
			dir := t.TempDir()
			var files []string
			for _, r := range tt.records {
				file := filepath.Join(dir, r.name+".json")
				if err := os.WriteFile(file, []byte(r.text), 0o644); err != nil {
					t.Fatal(err)
				}
				files = append(files, file)
			}
			var out bytes.Buffer
			failed, err := summarize(files, regexp.MustCompile(`^TestBig$`), &out)
			if err != nil {
				t.Fatal(err)
			}
			if failed != tt.wantFail {
				t.Errorf("failed = %v, want %v\n%s", failed, tt.wantFail, out.String())
			}
			lines := strings.Split(strings.TrimSpace(out.String()), "\n")
			if last := lines[len(lines)-1]; last != tt.wantLast {
				t.Errorf("last line %q, want %q\n%s", last, tt.wantLast, out.String())
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
