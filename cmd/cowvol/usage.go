package main

import (
	"fmt"
	"regexp"
	"strings"

	"github.com/urfave/cli/v2"
)

// Bad command lines are reported in cowvol's own words: flags with the two
// dashes they are typed with (Go's flag package writes one), and the
// nearest flag or command when the one given looks like a typo of it.

// singleDashFlag matches a flag name as Go's flag package writes it in its
// errors: a space (or the start), one dash, a name of two or more letters.
var singleDashFlag = regexp.MustCompile(`(^|\s)-([A-Za-z][A-Za-z0-9-]+)`)

// flagErrorMessage rewrites a flag parsing error of the verb c runs.
func flagErrorMessage(c *cli.Context, err error) string {
	msg := err.Error()
	prefix := ""
	if c != nil && c.Command != nil && c.Command.Name != "" && c.Command.Name != c.App.Name {
		prefix = c.Command.HelpName
		if prefix == "" {
			prefix = c.Command.Name
		}
		prefix = strings.TrimPrefix(prefix, c.App.Name+" ") + ": "
	}
	if name, ok := strings.CutPrefix(msg, "flag provided but not defined: -"); ok {
		name = strings.TrimPrefix(name, "-")
		out := fmt.Sprintf("%sunknown flag %s", prefix, dashed(name))
		if c != nil && c.Command != nil {
			if near := nearest(name, flagNames(c.Command.Flags)); near != "" {
				out += fmt.Sprintf(" (did you mean %s?)", dashed(near))
			}
		}
		return out
	}
	if name, ok := strings.CutPrefix(msg, "flag needs an argument: -"); ok {
		return fmt.Sprintf("%sflag %s needs a value", prefix, dashed(strings.TrimPrefix(name, "-")))
	}
	return prefix + singleDashFlag.ReplaceAllString(msg, "$1--$2")
}

// dashed writes a flag name as it is typed: -h, --size.
func dashed(name string) string {
	if len(name) == 1 {
		return "-" + name
	}
	return "--" + name
}

// flagNames are the names (and aliases) of flags.
func flagNames(flags []cli.Flag) []string {
	var names []string
	for _, f := range flags {
		names = append(names, f.Names()...)
	}
	return names
}

// unknownCommand refuses a verb cowvol does not have, suggesting the
// nearest one.
func unknownCommand(c *cli.Context, verb string) error {
	var names []string
	for _, cmd := range c.App.Commands {
		if !cmd.Hidden {
			names = append(names, cmd.Names()...)
		}
	}
	if near := nearest(verb, names); near != "" {
		return usageErrorf("unknown command %q (did you mean %s? see cowvol --help)", verb, near)
	}
	return usageErrorf("unknown command %q (see cowvol --help)", verb)
}

// nearest is the candidate s is most likely a typo of, or "": within an
// edit distance of a third of its length (at least 1, at most 3), or a
// prefix of it of at least 3 characters.
func nearest(s string, candidates []string) string {
	best, bestDist := "", -1
	for _, c := range candidates {
		if c == s {
			continue
		}
		d := editDistance(s, c)
		if bestDist < 0 || d < bestDist {
			best, bestDist = c, d
		}
	}
	if best == "" {
		return ""
	}
	if bestDist <= min(max(1, len(s)/3), 3) {
		return best
	}
	for _, c := range candidates {
		if len(s) >= 3 && strings.HasPrefix(c, s) {
			return c
		}
	}
	return ""
}

// editDistance is the Levenshtein distance between a and b (bytes).
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
