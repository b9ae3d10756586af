package control

import (
	"strings"
)

// Filter is one Filter.N of a Describe call: a resource matches when the
// named attribute matches any of the values (values may hold the EC2
// wildcards * and ?). Filters of one call are ANDed.
type Filter struct {
	Name   string
	Values []string
}

// maxFilterValues bounds the values of one filter (EC2's limit is 200).
const maxFilterValues = 200

// readFilters parses Filter.N.Name and Filter.N.Value.M.
func readFilters(p *params) ([]Filter, *APIError) {
	idx, err := p.indexes("Filter")
	if err != nil {
		return nil, err
	}
	var out []Filter
	for _, i := range idx {
		m := member("Filter", i)
		name, ok := p.get(m + ".Name")
		if !ok {
			return nil, missingParam(m + ".Name")
		}
		values, err := p.stringList(m + ".Value")
		if err != nil {
			return nil, err
		}
		if len(values) == 0 {
			return nil, invalidValue("The filter '%s' must have at least one value.", clip(name))
		}
		if len(values) > maxFilterValues {
			return nil, invalidValue("The filter '%s' has more than %d values.", clip(name), maxFilterValues)
		}
		out = append(out, Filter{Name: name, Values: values})
	}
	return out, nil
}

// matchAny reports whether s matches any of the patterns.
func matchAny(patterns []string, s string) bool {
	for _, p := range patterns {
		if wildcardMatch(p, s) {
			return true
		}
	}
	return false
}

// wildcardMatch reports whether s matches pattern, where * matches any
// sequence of characters (including none), ? matches exactly one, and a
// backslash makes the next character literal (\*, \?, \\), as in EC2
// filter values. Matching is case-sensitive and runs in O(len(pattern) *
// len(s)) at worst.
func wildcardMatch(pattern, s string) bool {
	type tok struct {
		r       rune
		literal bool
	}
	var toks []tok
	rs := []rune(pattern)
	for i := 0; i < len(rs); i++ {
		if rs[i] == '\\' && i+1 < len(rs) {
			i++
			toks = append(toks, tok{rs[i], true})
			continue
		}
		toks = append(toks, tok{rs[i], false})
	}
	str := []rune(s)
	// Iterative matching with one backtrack point: the last star.
	ti, si := 0, 0
	star, mark := -1, 0
	for si < len(str) {
		switch {
		case ti < len(toks) && !toks[ti].literal && toks[ti].r == '*':
			star, mark = ti, si
			ti++
		case ti < len(toks) && ((!toks[ti].literal && toks[ti].r == '?') || toks[ti].r == str[si]):
			ti++
			si++
		case star >= 0:
			ti = star + 1
			mark++
			si = mark
		default:
			return false
		}
	}
	for ti < len(toks) && !toks[ti].literal && toks[ti].r == '*' {
		ti++
	}
	return ti == len(toks)
}

// tagFilter reports whether tags satisfy a tag:<key> or tag-key filter;
// name is the filter's name. ok is false if name is neither.
func tagFilter(name string, values []string, tags []Tag) (match, ok bool) {
	if name == "tag-key" {
		for _, t := range tags {
			if matchAny(values, t.Key) {
				return true, true
			}
		}
		return false, true
	}
	key, isTag := strings.CutPrefix(name, "tag:")
	if !isTag || key == "" {
		return false, false
	}
	for _, t := range tags {
		if t.Key == key && matchAny(values, t.Value) {
			return true, true
		}
	}
	return false, true
}
