package main

import (
	"fmt"
	"strconv"
	"strings"
)

// --query takes the subset of JMESPath that scripts use with aws to pick
// values out of an answer:
//
//	VolumeId                      a field
//	Volumes[0].VolumeId           an index (negative: from the end)
//	Volumes[*].VolumeId           a projection: the rest, for every element
//	Volumes[].Tags[].Key          a flattening projection
//	Volumes[*].[VolumeId,State]   a multi-select list
//	"Key-With-Dash"               a quoted field name
//
// As in JMESPath, a missing field or an index out of range is null, and
// a projection drops the nulls its elements give.

// queryExpr is a parsed --query: a chain of steps applied in order.
type queryExpr []queryStep

// queryStep is one step of a query.
type queryStep struct {
	kind    stepKind
	field   string      // stepField
	index   int         // stepIndex
	selects []queryExpr // stepMulti
}

type stepKind int

const (
	stepField   stepKind = iota // .name
	stepIndex                   // [n]
	stepProject                 // [*]: the rest applies to every element
	stepFlatten                 // []: flatten one level, then project
	stepMulti                   // [a,b]: a list of sub-queries' values
)

// parseQuery parses s, or says where it is wrong.
func parseQuery(s string) (queryExpr, error) {
	p := &queryParser{s: s}
	q, err := p.expr()
	if err == nil && p.pos < len(s) {
		err = p.errorf("unexpected %q", s[p.pos:])
	}
	if err != nil {
		return nil, err
	}
	return q, nil
}

type queryParser struct {
	s   string
	pos int
}

func (p *queryParser) errorf(format string, args ...any) error {
	return fmt.Errorf("at character %d: %s", p.pos+1, fmt.Sprintf(format, args...))
}

// expr parses a chain: a field or a bracket, then any number of .field
// and brackets, up to the end, a ',' or a ']' of an enclosing list.
func (p *queryParser) expr() (queryExpr, error) {
	var q queryExpr
	first := true
	for p.pos < len(p.s) {
		switch c := p.s[p.pos]; {
		case c == ',' || c == ']':
			if first {
				return nil, p.errorf("expected a field name")
			}
			return q, nil
		case c == '[':
			st, err := p.bracket()
			if err != nil {
				return nil, err
			}
			q = append(q, st)
		case c == '.' && !first:
			p.pos++
			if p.pos < len(p.s) && p.s[p.pos] == '[' {
				// .[a,b]: a multi-select list of the current value
				st, err := p.bracket()
				if err != nil {
					return nil, err
				}
				if st.kind != stepMulti {
					return nil, p.errorf("expected a field name or [a,b] after '.'")
				}
				q = append(q, st)
				break
			}
			name, err := p.name()
			if err != nil {
				return nil, err
			}
			q = append(q, queryStep{kind: stepField, field: name})
		case first:
			name, err := p.name()
			if err != nil {
				return nil, err
			}
			q = append(q, queryStep{kind: stepField, field: name})
		default:
			return nil, p.errorf("expected '.', '[' or the end, not %q", string(c))
		}
		first = false
	}
	if first {
		return nil, p.errorf("the query is empty")
	}
	return q, nil
}

// name parses an identifier or a quoted name.
func (p *queryParser) name() (string, error) {
	start := p.pos
	if p.pos < len(p.s) && p.s[p.pos] == '"' {
		end := strings.IndexByte(p.s[p.pos+1:], '"')
		if end < 0 {
			return "", p.errorf("unterminated quoted name")
		}
		p.pos += end + 2
		return p.s[start+1 : p.pos-1], nil
	}
	for p.pos < len(p.s) {
		c := p.s[p.pos]
		if c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || p.pos > start && c >= '0' && c <= '9' {
			p.pos++
			continue
		}
		break
	}
	if p.pos == start {
		if p.pos == len(p.s) {
			return "", p.errorf("expected a field name at the end")
		}
		return "", p.errorf("expected a field name, not %q", string(p.s[p.pos]))
	}
	return p.s[start:p.pos], nil
}

// bracket parses [n], [*], [] or [a,b,...] (p.s[p.pos] is '[').
func (p *queryParser) bracket() (queryStep, error) {
	p.pos++
	rest := p.s[p.pos:]
	switch {
	case strings.HasPrefix(rest, "*]"):
		p.pos += 2
		return queryStep{kind: stepProject}, nil
	case strings.HasPrefix(rest, "]"):
		p.pos++
		return queryStep{kind: stepFlatten}, nil
	}
	if end := strings.IndexByte(rest, ']'); end > 0 {
		if n, err := strconv.Atoi(rest[:end]); err == nil {
			p.pos += end + 1
			return queryStep{kind: stepIndex, index: n}, nil
		}
	}
	var st queryStep
	st.kind = stepMulti
	for {
		if p.pos >= len(p.s) {
			return st, p.errorf("missing ']'")
		}
		sub, err := p.expr()
		if err != nil {
			return st, err
		}
		st.selects = append(st.selects, sub)
		if p.pos >= len(p.s) {
			return st, p.errorf("missing ']'")
		}
		c := p.s[p.pos]
		p.pos++
		if c == ']' {
			return st, nil
		}
		// c == ','
	}
}

// eval applies q to v, a value decoded from JSON (*jsonObject, []any,
// string, json.Number, bool, nil). As in JMESPath, [] ends the projections
// to its left, flattens their result and projects the rest over it:
// Volumes[].Tags[].Key is one flat list of keys, where
// Volumes[*].Tags[*].Key is a list per volume.
func (q queryExpr) eval(v any) any {
	start := 0
	for i, st := range q {
		if st.kind != stepFlatten {
			continue
		}
		if start == 0 {
			v = q[:i].evalSegment(v)
		} else {
			v = projectOver(v, q[start:i])
		}
		list, ok := v.([]any)
		if !ok {
			return nil
		}
		v, start = flatten(list), i+1
	}
	if start == 0 {
		return q.evalSegment(v)
	}
	return projectOver(v, q[start:])
}

// projectOver applies seg to every element of list v, dropping nulls.
func projectOver(v any, seg queryExpr) any {
	list, ok := v.([]any)
	if !ok {
		return nil
	}
	out := []any{}
	for _, el := range list {
		if r := seg.evalSegment(el); r != nil {
			out = append(out, r)
		}
	}
	return out
}

// evalSegment applies steps without [] to v; a [*] projects the steps
// after it over every element.
func (q queryExpr) evalSegment(v any) any {
	for i, st := range q {
		if v == nil {
			return nil
		}
		switch st.kind {
		case stepField:
			obj, ok := v.(*jsonObject)
			if !ok {
				return nil
			}
			v = obj.get(st.field)
		case stepIndex:
			list, ok := v.([]any)
			n := st.index
			if ok && n < 0 {
				n += len(list)
			}
			if !ok || n < 0 || n >= len(list) {
				return nil
			}
			v = list[n]
		case stepProject:
			return projectOver(v, q[i+1:])
		case stepMulti:
			out := make([]any, len(st.selects))
			for j, sub := range st.selects {
				out[j] = sub.eval(v)
			}
			v = out
		}
	}
	return v
}

// flatten splices the lists among list's elements into it, one level.
func flatten(list []any) []any {
	out := []any{}
	for _, el := range list {
		if inner, ok := el.([]any); ok {
			out = append(out, inner...)
			continue
		}
		out = append(out, el)
	}
	return out
}
