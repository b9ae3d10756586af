package main

import (
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
)

func main() {
	os.Exit(mainExit(os.Args[1:], os.Stdout, os.Stderr))
}

func mainExit(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("testreport", flag.ContinueOnError)
	fs.SetOutput(stderr)
	record := fs.String("o", "", "write the go test -json events to `FILE`")
	stream := fs.Bool("stream", false, "print the output as it comes (one package, -v)")
	summary := fs.Bool("summary", false, "summarize the recorded runs named as arguments")
	allow := fs.String("allow-skip", "", "`REGEXP` of the tests that skip unless asked for (opt-in)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	var allowSkip *regexp.Regexp
	if *allow != "" {
		re, err := regexp.Compile(*allow)
		if err != nil {
			fmt.Fprintf(stderr, "testreport: -allow-skip: %v\n", err)
			return 2
		}
		allowSkip = re
	}
	if *summary {
		failed, err := summarize(fs.Args(), allowSkip, stdout)
		if err != nil {
			fmt.Fprintf(stderr, "testreport: %v\n", err)
		}
		if failed || err != nil {
			return 1
		}
		return 0
	}
	if fs.NArg() == 0 || *record == "" {
		fmt.Fprintln(stderr, "usage: testreport [-stream] -o FILE -- go test -json ...; testreport -summary FILE...")
		return 2
	}
	if err := os.MkdirAll(filepath.Dir(*record), 0o755); err != nil {
		fmt.Fprintf(stderr, "testreport: %v\n", err)
		return 1
	}
	f, err := os.Create(*record)
	if err != nil {
		fmt.Fprintf(stderr, "testreport: %v\n", err)
		return 1
	}
	defer f.Close()
	if err := run(fs.Args(), f, stdout, *stream); err != nil {
		fmt.Fprintf(stderr, "testreport: %v\n", err)
		return 1
	}
	return 0
}
