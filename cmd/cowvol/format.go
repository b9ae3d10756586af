package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"sort"
	"strings"

	"github.com/urfave/cli/v2"
)

// What a client verb prints: its answer as aws prints it, narrowed by
// --query and written as --output json (the default) or text.

// Output formats.
const (
	outputJSON = "json"
	outputText = "text"
)

// outputOptions are --query (nil: none) and --output.
type outputOptions struct {
	query  queryExpr
	format string
}

// readOutputOptions reads --query and --output, given before or after
// the verb.
func readOutputOptions(c *cli.Context) (outputOptions, error) {
	var o outputOptions
	switch o.format = globalString(c, "output"); o.format {
	case outputJSON, outputText:
	default:
		return o, usageErrorf("--output: %q is not a format cowvol prints: json or text", o.format)
	}
	if s := globalString(c, "query"); s != "" {
		q, err := parseQuery(s)
		if err != nil {
			return o, usageErrorf("Bad value for --query %s: %v", s, err)
		}
		o.query = q
	}
	return o, nil
}

// printResult prints v, a verb's answer, as --query and --output say.
func printResult(c *cli.Context, v any) error {
	o, err := readOutputOptions(c)
	if err != nil {
		return err
	}
	if o.query == nil && o.format == outputJSON {
		return printJSON(c.App.Writer, v)
	}
	tree, err := toTree(v)
	if err != nil {
		return err
	}
	if o.query != nil {
		tree = o.query.eval(tree)
	}
	if o.format == outputText {
		var b strings.Builder
		formatText(&b, tree, "", nil)
		if _, err := io.WriteString(c.App.Writer, b.String()); err != nil {
			return fmt.Errorf("write output: %w", err)
		}
		return nil
	}
	return printJSON(c.App.Writer, tree)
}

// jsonObject is a JSON object that keeps its keys in order, so that a
// queried answer prints as the whole one does.
type jsonObject struct {
	keys []string
	vals map[string]any
}

func (o *jsonObject) get(k string) any { return o.vals[k] }

// MarshalJSON writes the object with its keys in order.
func (o *jsonObject) MarshalJSON() ([]byte, error) {
	var b bytes.Buffer
	b.WriteByte('{')
	for i, k := range o.keys {
		if i > 0 {
			b.WriteByte(',')
		}
		kb, err := json.Marshal(k)
		if err != nil {
			return nil, err
		}
		vb, err := marshalNoEscape(o.vals[k])
		if err != nil {
			return nil, err
		}
		b.Write(kb)
		b.WriteByte(':')
		b.Write(vb)
	}
	b.WriteByte('}')
	return b.Bytes(), nil
}

// marshalNoEscape is json.Marshal without HTML escaping, as printJSON.
func marshalNoEscape(v any) ([]byte, error) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(b.Bytes(), []byte("\n")), nil
}

// toTree turns an answer into *jsonObject, []any, string, json.Number,
// bool and nil, by way of its JSON.
func toTree(v any) (any, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("encode output: %w", err)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	return decodeTree(dec)
}

func decodeTree(dec *json.Decoder) (any, error) {
	tok, err := dec.Token()
	if err != nil {
		return nil, fmt.Errorf("decode output: %w", err)
	}
	switch t := tok.(type) {
	case json.Delim:
		switch t {
		case '{':
			o := &jsonObject{vals: make(map[string]any)}
			for dec.More() {
				kt, err := dec.Token()
				if err != nil {
					return nil, fmt.Errorf("decode output: %w", err)
				}
				k, _ := kt.(string)
				v, err := decodeTree(dec)
				if err != nil {
					return nil, err
				}
				o.keys = append(o.keys, k)
				o.vals[k] = v
			}
			_, err := dec.Token() // '}'
			return o, err
		case '[':
			list := []any{}
			for dec.More() {
				v, err := decodeTree(dec)
				if err != nil {
					return nil, err
				}
				list = append(list, v)
			}
			_, err := dec.Token() // ']'
			return list, err
		}
		return nil, errors.New("decode output: unexpected delimiter")
	}
	return tok, nil
}

// formatText writes v as `aws --output text` does: a scalar on a line; a
// list of scalars on one line, tab-separated (or one per line under an
// identifier); an object's scalars on one line, in key order, after the
// upper-cased name it was found under, then its lists and objects, each
// under its own name; the objects of one list share the columns of every
// scalar key any of them has.
func formatText(w *strings.Builder, v any, identifier string, scalarKeys []string) {
	switch t := v.(type) {
	case *jsonObject:
		formatTextObject(w, t, identifier, scalarKeys)
	case []any:
		formatTextList(w, t, identifier)
	default:
		w.WriteString(textScalar(v))
		w.WriteByte('\n')
	}
}

func formatTextList(w *strings.Builder, list []any, identifier string) {
	if len(list) == 0 {
		return
	}
	var objects, lists, scalars []any
	for _, el := range list {
		switch el.(type) {
		case *jsonObject:
			objects = append(objects, el)
		case []any:
			lists = append(lists, el)
		default:
			scalars = append(scalars, el)
		}
	}
	if len(objects) > 0 {
		keys := allScalarKeys(objects)
		for _, el := range list {
			formatText(w, el, identifier, keys)
		}
		return
	}
	if len(scalars) > 0 {
		formatTextScalars(w, scalars, identifier)
	}
	for _, l := range lists {
		formatText(w, l, identifier, nil)
	}
}

func formatTextScalars(w *strings.Builder, scalars []any, identifier string) {
	if identifier != "" {
		for _, s := range scalars {
			fmt.Fprintf(w, "%s\t%s\n", strings.ToUpper(identifier), textScalar(s))
		}
		return
	}
	for i, s := range scalars {
		if i > 0 {
			w.WriteByte('\t')
		}
		w.WriteString(textScalar(s))
	}
	w.WriteByte('\n')
}

func formatTextObject(w *strings.Builder, o *jsonObject, identifier string, scalarKeys []string) {
	var row []string
	var nested []string
	if scalarKeys == nil {
		for _, k := range sortedKeys(o) {
			if isScalar(o.vals[k]) {
				row = append(row, textScalar(o.vals[k]))
			} else {
				nested = append(nested, k)
			}
		}
	} else {
		for _, k := range scalarKeys {
			v, ok := o.vals[k]
			if !ok || !isScalar(v) {
				row = append(row, "")
				continue
			}
			row = append(row, textScalar(v))
		}
		for _, k := range sortedKeys(o) {
			if !isScalar(o.vals[k]) || !slices.Contains(scalarKeys, k) {
				nested = append(nested, k)
			}
		}
	}
	if len(row) > 0 {
		if identifier != "" {
			row = append([]string{strings.ToUpper(identifier)}, row...)
		}
		w.WriteString(strings.Join(row, "\t"))
		w.WriteByte('\n')
	}
	for _, k := range nested {
		formatText(w, o.vals[k], k, nil)
	}
}

// allScalarKeys are the keys with a scalar value in any of the objects,
// sorted.
func allScalarKeys(objects []any) []string {
	seen := make(map[string]bool)
	for _, el := range objects {
		o := el.(*jsonObject)
		for _, k := range o.keys {
			if isScalar(o.vals[k]) {
				seen[k] = true
			}
		}
	}
	keys := make([]string, 0, len(seen))
	for k := range seen {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

func sortedKeys(o *jsonObject) []string {
	keys := append([]string(nil), o.keys...)
	sort.Strings(keys)
	return keys
}

func isScalar(v any) bool {
	switch v.(type) {
	case *jsonObject, []any:
		return false
	}
	return true
}

// textScalar writes a scalar as aws's text output does (Python's str):
// True, False, None.
func textScalar(v any) string {
	switch t := v.(type) {
	case nil:
		return "None"
	case bool:
		if t {
			return "True"
		}
		return "False"
	case string:
		return t
	case json.Number:
		return t.String()
	}
	return fmt.Sprint(v)
}
