package main

import (
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/cowvol/cowvol/control"
)

// Flag parsing the verbs share.

// tagFlag reads --tag KEY=VALUE flags.
func tagFlag(c *cli.Context) ([]control.Tag, error) {
	var tags []control.Tag
	for _, kv := range c.StringSlice("tag") {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || k == "" {
			return nil, usageErrorf("--tag: %q is not KEY=VALUE", kv)
		}
		tags = append(tags, control.Tag{Key: k, Value: v})
	}
	return tags, nil
}

// idListFlag reads an ID list flag as aws takes it: repeated, comma
// separated, or space separated after the flag (`--volume-ids a b`: the
// IDs after the first are positional arguments).
func idListFlag(c *cli.Context, flag string) ([]string, error) {
	raw := c.StringSlice(flag)
	if c.Args().Present() {
		if len(raw) == 0 {
			return nil, noArgs(c)
		}
		for _, a := range c.Args().Slice() {
			if strings.HasPrefix(a, "-") {
				return nil, usageErrorf("%s: flag %s must come before the IDs", c.Command.Name, a)
			}
			raw = append(raw, a)
		}
	}
	return splitCommas(raw), nil
}

// splitCommas splits each value at commas, dropping empty parts.
func splitCommas(vals []string) []string {
	var out []string
	for _, v := range vals {
		for _, one := range strings.Split(v, ",") {
			if one != "" {
				out = append(out, one)
			}
		}
	}
	return out
}

// filterFlags reads --filter NAME=V1,V2 and the aws shorthand
// --filters Name=NAME,Values=V1,V2.
func filterFlags(c *cli.Context) ([]control.Filter, error) {
	var filters []control.Filter
	for _, f := range c.StringSlice("filter") {
		name, values, ok := strings.Cut(f, "=")
		if !ok || name == "" {
			return nil, usageErrorf("--filter: %q is not NAME=VALUE[,VALUE...]", f)
		}
		filters = append(filters, control.Filter{Name: name, Values: strings.Split(values, ",")})
	}
	for _, f := range c.StringSlice("filters") {
		flt, err := parseFilterShorthand(f)
		if err != nil {
			return nil, err
		}
		filters = append(filters, flt)
	}
	return filters, nil
}

// parseFilterShorthand parses the aws CLI shorthand Name=n,Values=a,b.
func parseFilterShorthand(s string) (control.Filter, error) {
	rest, ok := strings.CutPrefix(s, "Name=")
	if !ok {
		return control.Filter{}, usageErrorf("--filters: %q is not Name=NAME,Values=V1,V2", s)
	}
	name, values, ok := strings.Cut(rest, ",Values=")
	if !ok || name == "" || values == "" {
		return control.Filter{}, usageErrorf("--filters: %q is not Name=NAME,Values=V1,V2", s)
	}
	return control.Filter{Name: name, Values: strings.Split(values, ",")}, nil
}

// timeoutFlag reads a timeout flag as aws takes it, whole seconds (60), or
// as a duration (90s, 2m). 0 means no timeout; negative is refused.
func timeoutFlag(c *cli.Context, name string) (time.Duration, error) {
	return parseTimeout(name, c.String(name))
}

// parseTimeout parses the value s of timeout flag name, as timeoutFlag.
func parseTimeout(name, s string) (time.Duration, error) {
	var d time.Duration
	if n, err := strconv.ParseInt(s, 10, 64); err == nil {
		if n > math.MaxInt64/int64(time.Second) {
			return 0, usageErrorf("--%s: %s seconds is too long", name, s)
		}
		d = time.Duration(n) * time.Second
	} else if d, err = time.ParseDuration(s); err != nil {
		return 0, usageErrorf("--%s: %q is neither a number of seconds nor a duration (60, 90s, 2m)", name, s)
	}
	if d < 0 {
		return 0, usageErrorf("--%s: %s is negative", name, s)
	}
	return d, nil
}
