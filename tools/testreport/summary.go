package main

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"
)

// tally is what the recorded runs add up to.
type tally struct {
	passed   int
	failures []failure
	skipped  []skip // not opt-in
	optIn    []skip // skipped, matching -allow-skip
}

// failure is a test (or, when no test can be named, a package) that failed
// in one recorded run.
type failure struct {
	run  string // the record it comes from ("integration")
	key  testKey
	note string // why, when no "--- FAIL" line says it
}

// skip is a test that skipped in one recorded run, and why.
type skip struct {
	run    string
	key    testKey
	reason string
}

// count adds up res, the events of the run recorded as run: every test and
// subtest that ended, and in every package that failed, the tests that did
// not end (a timeout names those it interrupted; a crash leaves those it
// interrupted unfinished), or the package itself when no test can be named
// (a build failure, a crash between tests).
func (t *tally) count(run string, res *results, allowSkip *regexp.Regexp) {
	failedIn := map[string]bool{}
	for _, k := range res.order {
		o := res.tests[k]
		if k.test == "" {
			continue
		}
		switch o.action {
		case "pass":
			t.passed++
		case "fail":
			t.failures = append(t.failures, failure{run: run, key: k})
			failedIn[k.pkg] = true
		case "skip":
			s := skip{run: run, key: k, reason: o.reason()}
			if allowSkip != nil && allowSkip.MatchString(k.test) {
				t.optIn = append(t.optIn, s)
			} else {
				t.skipped = append(t.skipped, s)
			}
		}
	}
	for _, k := range res.order {
		if k.test != "" || res.tests[k].action != "fail" {
			continue
		}
		unfinished := unfinishedTests(res, k.pkg)
		for _, f := range unfinished {
			t.failures = append(t.failures, failure{run: run, key: f.key, note: f.note})
		}
		if len(unfinished) == 0 && !failedIn[k.pkg] {
			t.failures = append(t.failures, failure{run: run, key: k,
				note: "no test failed: a build failure, or the test binary died between tests"})
		}
	}
}

// unfinishedTests are the tests of the failed package pkg that did not end
// and had not already failed: those its timeout names, else those that
// were running when its test binary exited.
func unfinishedTests(res *results, pkg string) []failure {
	var fs []failure
	if to := res.timeouts[pkg]; to != nil {
		note := "timed out after " + to.after
		for _, name := range to.running {
			if o := res.tests[testKey{pkg, name}]; o == nil || o.action != "fail" {
				fs = append(fs, failure{key: testKey{pkg, name}, note: note})
			}
		}
		if len(fs) == 0 {
			fs = append(fs, failure{key: testKey{pkg, ""}, note: note + ", naming no running test"})
		}
		return fs
	}
	for _, k := range res.order {
		if o := res.tests[k]; k.pkg == pkg && k.test != "" && o.running && o.action == "" {
			fs = append(fs, failure{key: k, note: "did not finish: the test binary exited while it ran"})
		}
	}
	return fs
}

const rule = "=============================================================================="

// report prints the summary to w and says whether it is a failure:
// a test failed, or requireAll and a test skipped that is not opt-in.
func (t tally) report(w io.Writer, requireAll bool) (failed bool) {
	if len(t.optIn) > 0 {
		fmt.Fprintf(w, "testreport: %d opt-in tests skipped, as they should be:", len(t.optIn))
		for _, s := range t.optIn {
			fmt.Fprintf(w, " %s", s.key.test)
		}
		fmt.Fprintln(w)
	}
	if len(t.skipped) > 0 {
		fmt.Fprintln(w, rule)
		fmt.Fprintf(w, "testreport: %d TESTS SKIPPED: they tested nothing\n", len(t.skipped))
		for _, s := range t.skipped {
			fmt.Fprintf(w, "  SKIP %s [%s]: %s\n", s.key, s.run, s.reason)
		}
		if requireAll {
			fmt.Fprintln(w, "testreport: COWVOL_REQUIRE_ROOT=1: a skipped test is a failure")
		} else {
			fmt.Fprintln(w, "testreport: as root, `make test` installs what is missing (make prereqs);")
			fmt.Fprintln(w, "testreport: COWVOL_REQUIRE_ROOT=1 makes every skip a failure, as CI does")
		}
		fmt.Fprintln(w, rule)
	}
	if len(t.failures) > 0 {
		fmt.Fprintln(w, "testreport: FAILED:")
		for _, f := range t.failures {
			fmt.Fprintf(w, "  FAIL %s [%s]", f.key, f.run)
			if f.note != "" {
				fmt.Fprintf(w, ": %s", f.note)
			}
			fmt.Fprintln(w)
		}
	}
	n := len(t.skipped) + len(t.optIn)
	fmt.Fprintf(w, "testreport: %d passed, %d failed, %d skipped\n", t.passed, len(t.failures), n)
	return len(t.failures) > 0 || (requireAll && len(t.skipped) > 0)
}

// summarize reads the recorded runs in files and reports them. Each is
// counted on its own: the integration package runs twice in `make test`
// (as is, and under -race), and one run's pass must not hide the other's
// failure.
func summarize(files []string, allowSkip *regexp.Regexp, w io.Writer) (failed bool, err error) {
	var t tally
	for _, name := range files {
		res, err := readRecord(name)
		if err != nil {
			return true, err
		}
		t.count(strings.TrimSuffix(filepath.Base(name), ".json"), res, allowSkip)
	}
	if len(files) == 0 {
		fmt.Fprintln(w, "testreport: no test ran")
		return true, nil
	}
	requireAll := strings.TrimSpace(os.Getenv("COWVOL_REQUIRE_ROOT")) == "1"
	return t.report(w, requireAll), nil
}

// readRecord reads the events recorded in the file name.
func readRecord(name string) (*results, error) {
	f, err := os.Open(name)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	res := newResults()
	if err := readEvents(f, func(e event, _ []byte) { res.add(e) }); err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	return res, nil
}
