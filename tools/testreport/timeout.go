package main

import (
	"regexp"
	"strings"
)

// timeout is what a test binary printed when its -timeout fired: it
// panics naming the tests that were running, and exits without a
// "--- FAIL" line for any of them, so only this says which ones failed.
//
//	panic: test timed out after 12m0s
//		running tests:
//			TestX (40s)
//			TestX/step (1s)
type timeout struct {
	after   string   // the -timeout, as go test prints it ("12m0s")
	running []string // the tests it names as running, parents first
	listing bool     // the lines that follow are the list
}

const timeoutPanic = "panic: test timed out after "

// plainFail is go test's closing line for a failed package, as it prints it
// (and as test2json passes it on): "FAIL\t<package>\t<time>".
var plainFail = regexp.MustCompile(`^FAIL\t(\S+)\t`)

// scanTimeout reads one output line of pkg, noting a timeout panic and the
// tests it lists.
func (r *results) scanTimeout(pkg, line string) {
	text := strings.TrimRight(line, "\r\n")
	if after, ok := strings.CutPrefix(text, timeoutPanic); ok {
		r.timeouts[pkg] = &timeout{after: after}
		return
	}
	to := r.timeouts[pkg]
	if to == nil {
		return
	}
	switch {
	case text == "\trunning tests:":
		to.listing = true
	case to.listing && strings.HasPrefix(text, "\t\t"):
		name, _, _ := strings.Cut(strings.TrimPrefix(text, "\t\t"), " (")
		to.running = append(to.running, name)
	default:
		to.listing = false
	}
}

// scanPlainFail reads one line that came without -json framing: go test's
// "FAIL\t<package>\t<time>" marks that package failed, and a timeout seen
// in the plain lines before it becomes that package's.
func (r *results) scanPlainFail(line string) {
	m := plainFail.FindStringSubmatch(line)
	if m == nil {
		return
	}
	pkg := m[1]
	if to := r.timeouts[plainPackage]; to != nil {
		r.timeouts[pkg] = to
		delete(r.timeouts, plainPackage)
	}
	r.add(event{Action: "fail", Package: pkg})
}
