package main

import (
	"fmt"
	"io"
	"os"
	"regexp"
	"strings"
)

// tally is what the recorded runs add up to.
type tally struct {
	passed, failed int
	skipped        []testKey // not opt-in
	optIn          []testKey // skipped, matching -allow-skip
	res            *results
}

// count adds up res: every test and subtest that ended, and every package
// that failed with no test failing (a build failure, a crash between
// tests) as one failure.
func count(res *results, allowSkip *regexp.Regexp) tally {
	t := tally{res: res}
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
			t.failed++
			failedIn[k.pkg] = true
		case "skip":
			if allowSkip != nil && allowSkip.MatchString(k.test) {
				t.optIn = append(t.optIn, k)
			} else {
				t.skipped = append(t.skipped, k)
			}
		}
	}
	for _, k := range res.order {
		if k.test == "" && res.tests[k].action == "fail" && !failedIn[k.pkg] {
			t.failed++
		}
	}
	return t
}

const rule = "=============================================================================="

// report prints the summary to w and says whether it is a failure:
// a test failed, or requireAll and a test skipped that is not opt-in.
func (t tally) report(w io.Writer, requireAll bool) (failed bool) {
	if len(t.optIn) > 0 {
		fmt.Fprintf(w, "testreport: %d opt-in tests skipped, as they should be:", len(t.optIn))
		for _, k := range t.optIn {
			fmt.Fprintf(w, " %s", k.test)
		}
		fmt.Fprintln(w)
	}
	if len(t.skipped) > 0 {
		fmt.Fprintln(w, rule)
		fmt.Fprintf(w, "testreport: %d TESTS SKIPPED: they tested nothing\n", len(t.skipped))
		for _, k := range t.skipped {
			fmt.Fprintf(w, "  SKIP %s: %s\n", k, t.res.tests[k].reason())
		}
		if requireAll {
			fmt.Fprintln(w, "testreport: COWVOL_REQUIRE_ROOT=1: a skipped test is a failure")
		} else {
			fmt.Fprintln(w, "testreport: as root, `make test` installs what is missing (make prereqs);")
			fmt.Fprintln(w, "testreport: COWVOL_REQUIRE_ROOT=1 makes every skip a failure, as CI does")
		}
		fmt.Fprintln(w, rule)
	}
	if t.failed > 0 {
		fmt.Fprintln(w, "testreport: FAILED:")
		for _, k := range t.res.order {
			if k.test != "" && t.res.tests[k].action == "fail" {
				fmt.Fprintf(w, "  FAIL %s\n", k)
			}
		}
	}
	fmt.Fprintf(w, "testreport: %d passed, %d failed, %d skipped\n", t.passed, t.failed, len(t.skipped)+len(t.optIn))
	return t.failed > 0 || (requireAll && len(t.skipped) > 0)
}

// summarize reads the recorded runs in files and reports them.
func summarize(files []string, allowSkip *regexp.Regexp, w io.Writer) (failed bool, err error) {
	res := newResults()
	for _, name := range files {
		f, err := os.Open(name)
		if err != nil {
			return true, err
		}
		err = readEvents(f, func(e event, _ []byte) { res.add(e) })
		f.Close()
		if err != nil {
			return true, fmt.Errorf("%s: %w", name, err)
		}
	}
	if len(files) == 0 {
		fmt.Fprintln(w, "testreport: no test ran")
		return true, nil
	}
	requireAll := strings.TrimSpace(os.Getenv("COWVOL_REQUIRE_ROOT")) == "1"
	return count(res, allowSkip).report(w, requireAll), nil
}
