package control

import (
	"encoding/base64"
	"slices"
	"strings"
)

// What DescribeVolumes, DescribeVolumeStatus and DescribeSnapshots share: a
// list of IDs, filters on named attributes (and tags, where the resource
// has them), and paging with MaxResults and NextToken.

// describeRequest is the common part of a Describe call.
type describeRequest struct {
	ids        []string
	filters    []Filter
	maxResults int64  // 0: everything in one answer
	after      string // from NextToken: answer only IDs after this one
	dryRun     bool
}

// describeKind is what differs between the resources described.
type describeKind[T any] struct {
	idParam   string // "VolumeId": the ID list is VolumeId.N
	setName   string // "volumeSet", as EC2 names it in messages
	noun      string // "volume", for not-found messages
	maxLimit  int64  // the largest page: a larger MaxResults gets pages of this size
	validID   func(string) bool
	malformed func(id string) *APIError
	notFound  func(id string) *APIError
	id        func(*T) string
	// tags, if set, makes tag:<key> and tag-key filters valid.
	tags func(*T) []Tag
	// attrs are the filter names besides tag:<key> and tag-key; lists
	// those of attributes with many values (an item matches when any
	// of them does).
	attrs map[string]func(*T) string
	lists map[string]func(*T) []string
}

// read parses and checks the common parameters. The caller reads its own
// extra parameters, then calls p.unknown().
func (k *describeKind[T]) read(p *params) (describeRequest, *APIError) {
	var r describeRequest
	var e *APIError
	if r.dryRun, e = p.boolean("DryRun"); e != nil {
		return r, e
	}
	if r.ids, e = p.stringList(k.idParam); e != nil {
		return r, e
	}
	if r.filters, e = readFilters(p); e != nil {
		return r, e
	}
	maxResults, hasMax, e := p.integer("MaxResults")
	if e != nil {
		return r, e
	}
	token, _ := p.get("NextToken")
	for _, id := range r.ids {
		if !k.validID(id) {
			return r, k.malformed(id)
		}
	}
	for _, f := range r.filters {
		if !k.validFilter(f.Name) {
			return r, invalidValue("The filter '%s' is invalid", clip(f.Name))
		}
	}
	if hasMax {
		if len(r.ids) > 0 {
			return r, apiErr(CodeInvalidParameterCombination, "The parameter %s cannot be used with the parameter maxResults", k.setName)
		}
		if maxResults < minDescribeResults {
			return r, invalidValue("Value ( %d ) for parameter maxResults is invalid. Expecting a value between %d and %d.",
				maxResults, minDescribeResults, k.maxLimit)
		}
		// Above the largest, EC2 answers pages of the largest (the
		// aws CLI sends 1000 to every Describe call it pages).
		r.maxResults = min(maxResults, k.maxLimit)
	}
	if token != "" {
		b, err := base64.RawURLEncoding.DecodeString(token)
		if err != nil || !k.validID(string(b)) {
			return r, apiErr(CodeInvalidPaginationToken, "The pagination token '%s' is invalid.", clip(token))
		}
		r.after = string(b)
	}
	return r, nil
}

// readAlone reads a Describe call with no parameters of its own: the
// common ones, no others, and DryRun's answer (DryRunOperation: the call
// would have been allowed) as its error.
func (k *describeKind[T]) readAlone(p *params) (describeRequest, *APIError) {
	r, e := k.read(p)
	if e != nil {
		return r, e
	}
	if e := p.unknown(); e != nil {
		return r, e
	}
	if r.dryRun {
		return r, errDryRun()
	}
	return r, nil
}

func (k *describeKind[T]) validFilter(name string) bool {
	if _, ok := k.attrs[name]; ok {
		return true
	}
	if _, ok := k.lists[name]; ok {
		return true
	}
	_, ok := tagFilter(name, nil, nil)
	return ok && k.tags != nil
}

// answer picks one page of items (sorted by ID) for r: the IDs asked for
// (all of them must exist), those after the NextToken, matching every
// filter and keep. next is the NextToken of the following page, if any.
func (k *describeKind[T]) answer(items []T, r describeRequest, keep func(*T) bool) (page []T, next string, e *APIError) {
	if len(r.ids) > 0 {
		if items, e = k.selectIDs(items, r.ids); e != nil {
			return nil, "", e
		}
	}
	page = []T{}
	for i := range items {
		it := &items[i]
		if k.id(it) <= r.after || !k.matches(it, r.filters) || (keep != nil && !keep(it)) {
			continue
		}
		if r.maxResults > 0 && int64(len(page)) == r.maxResults {
			return page, base64.RawURLEncoding.EncodeToString([]byte(k.id(&page[len(page)-1]))), nil
		}
		page = append(page, *it)
	}
	return page, "", nil
}

// selectIDs returns the items named in ids, in items' order, or the
// not-found error naming every missing one.
func (k *describeKind[T]) selectIDs(items []T, ids []string) ([]T, *APIError) {
	want := make(map[string]bool, len(ids))
	for _, id := range ids {
		want[id] = true
	}
	var out []T
	for i := range items {
		if id := k.id(&items[i]); want[id] {
			out = append(out, items[i])
			delete(want, id)
		}
	}
	var missing []string
	for _, id := range ids {
		if want[id] {
			missing = append(missing, id)
			delete(want, id)
		}
	}
	switch len(missing) {
	case 0:
		return out, nil
	case 1:
		return nil, k.notFound(missing[0])
	}
	e := k.notFound(strings.Join(missing, ", "))
	e.Message = "The " + k.noun + "s '" + clip(strings.Join(missing, ", ")) + "' do not exist."
	return nil, e
}

// matches reports whether it passes every filter.
func (k *describeKind[T]) matches(it *T, filters []Filter) bool {
	for _, f := range filters {
		if attr, ok := k.attrs[f.Name]; ok {
			if !matchAny(f.Values, attr(it)) {
				return false
			}
			continue
		}
		if list, ok := k.lists[f.Name]; ok {
			if !slices.ContainsFunc(list(it), func(s string) bool { return matchAny(f.Values, s) }) {
				return false
			}
			continue
		}
		if match, _ := tagFilter(f.Name, f.Values, k.tags(it)); !match {
			return false
		}
	}
	return true
}
