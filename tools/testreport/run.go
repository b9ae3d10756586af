package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
)

// run runs args (a go test -json command), writes its events to record
// and prints its output to w: as it comes when stream (one package, -v),
// else one package at a time when it ends, in full only when it failed
// (as go test prints without -v), with its skipped tests and their
// reasons. It returns the command's error, or an error when a test failed
// although the command exited 0.
func run(args []string, record io.Writer, w io.Writer, stream bool) error {
	cmd := exec.Command(args[0], args[1:]...)
	cmd.Stdin, cmd.Stderr = os.Stdin, os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		return err
	}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("%s: %w", strings.Join(args, " "), err)
	}
	res := newResults()
	failed := false
	readErr := readEvents(out, func(e event, line []byte) {
		record.Write(append(line, '\n'))
		o := res.add(e)
		if stream && (e.Action == "output" || e.Action == "build-output") {
			io.WriteString(w, e.Output)
		}
		if e.Action == "fail" || e.Action == "build-fail" {
			failed = true
		}
		if !stream && e.Test == "" && (e.Action == "pass" || e.Action == "fail" || e.Action == "skip") {
			printPackage(w, res, e.Package, o)
		}
	})
	err = cmd.Wait()
	switch {
	case readErr != nil:
		return readErr
	case err != nil:
		return err
	case failed:
		return errors.New("a test failed")
	}
	return nil
}

// printPackage prints a package that ended: everything it printed when it
// failed, else its closing line and its skipped tests.
func printPackage(w io.Writer, res *results, pkg string, o *outcome) {
	if o.action == "fail" {
		for _, k := range res.order {
			if k.pkg == pkg && k.test != "" {
				writeLines(w, res.tests[k].output)
			}
		}
		writeLines(w, o.output)
		return
	}
	for _, k := range res.order {
		if t := res.tests[k]; k.pkg == pkg && k.test != "" && t.action == "skip" {
			fmt.Fprintf(w, "--- SKIP: %s: %s\n", k.test, t.reason())
		}
	}
	for _, l := range o.output {
		if strings.HasPrefix(l, "ok ") || strings.HasPrefix(l, "?") || strings.HasPrefix(l, "FAIL") {
			io.WriteString(w, l)
		}
	}
}

func writeLines(w io.Writer, lines []string) {
	for _, l := range lines {
		io.WriteString(w, l)
	}
}
