package control

import (
	"errors"
	"io"
	"mime"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"unicode/utf8"
)

// Limits on a request.
const (
	// MaxBodyBytes bounds a POST body; larger requests are refused with
	// 413 RequestEntityTooLarge.
	MaxBodyBytes = 1 << 20
	// maxParams bounds the number of parameters in one request.
	maxParams = 10000
	// maxListIndex bounds the index of a member of a flattened list.
	maxListIndex = 1000
)

// params is a request's parameters, parsed and checked: every key given
// once, keys and values valid UTF-8. Accessors record which keys they
// consumed, so that unknown() can refuse the rest as EC2 does.
type params struct {
	vals map[string]string
	keys []string // sorted, for prefix scans
	used map[string]bool
}

// readParams reads the body of r and parses its parameters.
func readParams(w http.ResponseWriter, r *http.Request) (*params, *APIError) {
	body, e := readBody(w, r)
	if e != nil {
		return nil, e
	}
	return parseParams(r, body)
}

// readBody reads a POST body of at most MaxBodyBytes (nil for GET).
func readBody(w http.ResponseWriter, r *http.Request) ([]byte, *APIError) {
	if r.Method != http.MethodPost {
		return nil, nil
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxBodyBytes))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			return nil, &APIError{
				Code:       CodeRequestEntityTooLarge,
				Message:    "The request body is larger than 1 MiB.",
				StatusCode: http.StatusRequestEntityTooLarge,
			}
		}
		return nil, apiErr(CodeMalformedQueryString, "Cannot read the request body.")
	}
	return body, nil
}

// parseParams parses a GET query or a POST form body (plus its query
// string).
func parseParams(r *http.Request, body []byte) (*params, *APIError) {
	vals := make(map[string]string)
	if err := addQuery(vals, r.URL.RawQuery); err != nil {
		return nil, err
	}
	if r.Method == http.MethodPost {
		if ct := r.Header.Get("Content-Type"); ct != "" {
			mt, _, err := mime.ParseMediaType(ct)
			if err != nil || mt != "application/x-www-form-urlencoded" {
				return nil, invalidValue("Unsupported Content-Type %q: send application/x-www-form-urlencoded", clip(ct))
			}
		}
		if err := addQuery(vals, string(body)); err != nil {
			return nil, err
		}
	}
	p := &params{vals: vals, used: make(map[string]bool)}
	p.keys = make([]string, 0, len(vals))
	for k := range vals {
		p.keys = append(p.keys, k)
	}
	sort.Strings(p.keys)
	return p, nil
}

// addQuery adds the parameters of one urlencoded string to vals.
func addQuery(vals map[string]string, raw string) *APIError {
	if raw == "" {
		return nil
	}
	q, err := url.ParseQuery(raw)
	if err != nil {
		return apiErr(CodeMalformedQueryString, "The query string is malformed.")
	}
	for k, vs := range q {
		switch {
		case k == "":
			return apiErr(CodeMalformedQueryString, "The query string has a parameter with no name.")
		case !utf8.ValidString(k):
			return invalidValue("A parameter name is not valid UTF-8.")
		case len(vs) > 1:
			return invalidValue("The parameter %s is given more than once.", clip(k))
		}
		if _, dup := vals[k]; dup {
			return invalidValue("The parameter %s is given more than once.", clip(k))
		}
		if !utf8.ValidString(vs[0]) {
			return invalidValue("The value of parameter %s is not valid UTF-8.", clip(k))
		}
		if len(vals) >= maxParams {
			return invalidValue("The request has more than %d parameters.", maxParams)
		}
		vals[k] = vs[0]
	}
	return nil
}

// get returns the value of parameter name and whether it was given.
func (p *params) get(name string) (string, bool) {
	v, ok := p.vals[name]
	if ok {
		p.used[name] = true
	}
	return v, ok
}

// boolean returns the value of a boolean parameter: exactly true or
// false; absent means false.
func (p *params) boolean(name string) (bool, *APIError) {
	v, ok := p.get(name)
	switch {
	case !ok || v == "false":
		return false, nil
	case v == "true":
		return true, nil
	}
	return false, invalidValue("Value (%s) for parameter %s is invalid. Expected: 'true' or 'false'.", clip(v), name)
}

// integer returns the value of a non-negative integer parameter (decimal
// digits only) and whether it was given.
func (p *params) integer(name string) (int64, bool, *APIError) {
	v, ok := p.get(name)
	if !ok {
		return 0, false, nil
	}
	n, err := parseDigits(v)
	if err != nil {
		return 0, true, invalidValue("Value (%s) for parameter %s is invalid. Expected a non-negative integer.", clip(v), name)
	}
	return n, true, nil
}

// parseDigits parses a non-empty string of ASCII decimal digits.
func parseDigits(s string) (int64, error) {
	if s == "" {
		return 0, strconv.ErrSyntax
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, strconv.ErrSyntax
		}
	}
	return strconv.ParseInt(s, 10, 64)
}

// indexes returns the indexes of the flattened 1-based list prefix.N[...]
// in increasing order. Gaps are allowed (EC2 allows them too); an index
// that is not a positive integer without leading zeros, at most
// maxListIndex, is refused. Which keys of each member are valid is up to
// the caller; keys it does not consume are refused by unknown().
func (p *params) indexes(prefix string) ([]int, *APIError) {
	dot := prefix + "."
	var out []int
	seen := make(map[int]bool)
	for i := sort.SearchStrings(p.keys, dot); i < len(p.keys) && strings.HasPrefix(p.keys[i], dot); i++ {
		seg, _, _ := strings.Cut(p.keys[i][len(dot):], ".")
		n, ok := parseIndex(seg)
		if !ok {
			return nil, invalidValue("Invalid list index in parameter %s: expected an integer from 1 to %d without leading zeros.",
				clip(p.keys[i]), maxListIndex)
		}
		if !seen[n] {
			seen[n] = true
			out = append(out, n)
		}
	}
	sort.Ints(out)
	return out, nil
}

func parseIndex(s string) (int, bool) {
	if s == "" || len(s) > 4 || s[0] == '0' {
		return 0, false
	}
	n, err := parseDigits(s)
	if err != nil || n > maxListIndex {
		return 0, false
	}
	return int(n), true
}

// member is the key prefix of member i of list prefix.
func member(prefix string, i int) string { return prefix + "." + strconv.Itoa(i) }

// stringList returns the values of a flattened list of scalars prefix.N, in
// index order.
func (p *params) stringList(prefix string) ([]string, *APIError) {
	idx, err := p.indexes(prefix)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, i := range idx {
		if v, ok := p.get(member(prefix, i)); ok {
			out = append(out, v)
		}
		// else: only prefix.N.something keys, left for unknown().
	}
	return out, nil
}

// commonParams are accepted in every request and ignored: the protocol's
// own and SigV2/SigV4 signing parameters.
var commonParams = []string{
	"Action", "Version", "AWSAccessKeyId", "Signature", "SignatureMethod",
	"SignatureVersion", "Timestamp", "Expires", "SecurityToken",
}

// unknown refuses the first parameter no accessor consumed.
func (p *params) unknown() *APIError {
	for _, k := range p.keys {
		if p.used[k] || strings.HasPrefix(k, "X-Amz-") {
			continue
		}
		common := false
		for _, c := range commonParams {
			if k == c {
				common = true
				break
			}
		}
		if !common {
			return apiErr(CodeUnknownParameter, "The parameter %s is not recognized", clip(k))
		}
	}
	return nil
}
