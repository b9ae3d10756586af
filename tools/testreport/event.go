package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"strings"
)

// event is one line of `go test -json` (cmd/test2json's TestEvent).
type event struct {
	Action  string
	Package string
	Test    string
	Output  string
}

// testKey names a test: its package and name ("" for the package itself).
type testKey struct{ pkg, test string }

func (k testKey) String() string {
	if k.test == "" {
		return k.pkg
	}
	return k.pkg + " " + k.test
}

// outcome is how a test (or a package) ended, and what it printed.
type outcome struct {
	action  string   // pass, fail or skip; "" while running
	running bool     // started or continued, and neither paused nor ended
	output  []string // its output lines, in order
}

// plainPackage is the pseudo package of the lines that are not events.
const plainPackage = "go test"

// results gathers the events of one go test run.
type results struct {
	order    []testKey // first seen first
	tests    map[testKey]*outcome
	timeouts map[string]*timeout // by package: its test binary timed out
}

func newResults() *results {
	return &results{tests: map[testKey]*outcome{}, timeouts: map[string]*timeout{}}
}

// add records e and returns the test's outcome.
func (r *results) add(e event) *outcome {
	k := testKey{e.Package, e.Test}
	o := r.tests[k]
	if o == nil {
		o = &outcome{}
		r.tests[k] = o
		r.order = append(r.order, k)
	}
	switch e.Action {
	case "output", "build-output":
		o.output = append(o.output, e.Output)
		r.scanTimeout(e.Package, e.Output)
		if e.Package == plainPackage {
			r.scanPlainFail(e.Output)
		}
	case "run", "cont":
		o.running = true
	case "pause":
		o.running = false
	case "pass", "fail", "skip":
		o.action, o.running = e.Action, false
	case "build-fail":
		o.action, o.running = "fail", false
	}
	return o
}

// readEvents feeds every event of r to fn; lines that are not events
// (go test's own messages, a build failure without -json framing) come as
// output of the pseudo package plainPackage.
func readEvents(r io.Reader, fn func(event, []byte)) error {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<20), 16<<20)
	for sc.Scan() {
		line := sc.Bytes()
		var e event
		if err := json.Unmarshal(line, &e); err != nil || e.Action == "" {
			e = event{Action: "output", Package: plainPackage, Output: string(line) + "\n"}
		}
		fn(e, line)
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("reading go test -json: %w", err)
	}
	return nil
}

// reason is the message a skipped test gave: its output without the
// framework's own lines, first line only.
func (o *outcome) reason() string {
	for _, l := range o.output {
		t := strings.TrimSpace(l)
		if t == "" || strings.HasPrefix(t, "=== ") || strings.HasPrefix(t, "--- ") {
			continue
		}
		return t
	}
	return "(no reason given)"
}
