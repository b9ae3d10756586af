package control

import (
	"cmp"
	"context"
	"encoding/base64"
	"encoding/xml"
	"errors"
	"slices"
	"strings"

	"github.com/cowvol/cowvol/cow"
)

// CreateTags, DeleteTags and DescribeTags, as EC2 answers them for
// volumes and snapshots. The engine checks every resource before it
// changes any (cow.Engine.ChangeTags): an unknown ID, a malformed one, a
// resource that would have more than 50 tags, or a reserved (aws:) key
// changes nothing. DescribeTags lists the tags of this account's
// resources: its volumes and the snapshots it owns (those of other
// accounts sharing the store show their tags in DescribeSnapshots only,
// as EC2 keeps each account's tags to itself).

// tagBackend is what the tag calls need of the engine besides Backend.
type tagBackend interface {
	ChangeTags(ctx context.Context, c cow.TagChange) error
}

// Codes of the tag calls.
const (
	CodeInvalidID          = "InvalidID"
	CodeTagLimitExceeded   = "TagLimitExceeded"
	maxDescribeTags        = 1000
	resourceTypeVolume     = "volume"
	resourceTypeSnapshot   = "snapshot"
	maxTagResourcesPerCall = 1000
)

// CreateTagsResponse answers CreateTags.
type CreateTagsResponse struct {
	XMLName xml.Name `xml:"http://ec2.amazonaws.com/doc/2016-11-15/ CreateTagsResponse"`
	ResponseMetadata
	Return bool `xml:"return"`
}

// DeleteTagsResponse answers DeleteTags.
type DeleteTagsResponse struct {
	XMLName xml.Name `xml:"http://ec2.amazonaws.com/doc/2016-11-15/ DeleteTagsResponse"`
	ResponseMetadata
	Return bool `xml:"return"`
}

// DescribeTagsResponse answers DescribeTags.
type DescribeTagsResponse struct {
	XMLName xml.Name `xml:"http://ec2.amazonaws.com/doc/2016-11-15/ DescribeTagsResponse"`
	ResponseMetadata
	TagSet    TagDescriptions `xml:"tagSet"`
	NextToken string          `xml:"nextToken,omitempty"`
}

// TagDescriptions are the <item>s of DescribeTags' <tagSet>.
type TagDescriptions struct {
	Items []TagDescription `xml:"item"`
}

// TagDescription is one tag of one resource.
type TagDescription struct {
	ResourceID   string `xml:"resourceId"`
	ResourceType string `xml:"resourceType"`
	Key          string `xml:"key"`
	Value        string `xml:"value"`
}

// readResourceIDs reads ResourceId.N: at least one, each a volume's or a
// snapshot's ID in form (InvalidID otherwise).
func readResourceIDs(p *params) ([]string, *APIError) {
	ids, e := p.stringList("ResourceId")
	if e != nil {
		return nil, e
	}
	if len(ids) == 0 {
		return nil, missingParam("ResourceId")
	}
	if len(ids) > maxTagResourcesPerCall {
		return nil, invalidValue("At most %d resources may be tagged in one call.", maxTagResourcesPerCall)
	}
	for _, id := range ids {
		if !cow.ValidVolumeID(id) && !cow.ValidSnapshotID(id) {
			return nil, invalidID(id)
		}
	}
	return ids, nil
}

func invalidID(id string) *APIError {
	return apiErr(CodeInvalidID, "The ID '%s' is not valid", clip(id))
}

// createTags: ResourceId.N, Tag.N.Key, Tag.N.Value, DryRun.
func (s *Server) createTags(ctx context.Context, p *params) (response, error) {
	dryRun, e := p.boolean("DryRun")
	if e != nil {
		return nil, e
	}
	ids, idsErr := readResourceIDs(p)
	idx, e := p.indexes("Tag")
	if e != nil {
		return nil, e
	}
	var tags []cow.Tag
	for _, i := range idx {
		m := member("Tag", i)
		key, ok := p.get(m + ".Key")
		if !ok {
			return nil, missingParam(m + ".Key")
		}
		value, _ := p.get(m + ".Value")
		tags = append(tags, cow.Tag{Key: key, Value: value})
	}
	if e := p.unknown(); e != nil {
		return nil, e
	}
	switch {
	case idsErr != nil:
		return nil, idsErr
	case len(tags) == 0:
		return nil, missingParam("Tag")
	}
	if err := s.changeTags(ctx, cow.TagChange{ResourceIDs: ids, Set: tags, DryRun: dryRun}); err != nil {
		return nil, err
	}
	return &CreateTagsResponse{Return: true}, nil
}

// deleteTags: ResourceId.N, Tag.N.Key, Tag.N.Value (absent: whatever the
// value; present, even empty: only that value), DryRun. Without Tag.N
// every tag of the resources goes.
func (s *Server) deleteTags(ctx context.Context, p *params) (response, error) {
	dryRun, e := p.boolean("DryRun")
	if e != nil {
		return nil, e
	}
	ids, idsErr := readResourceIDs(p)
	idx, e := p.indexes("Tag")
	if e != nil {
		return nil, e
	}
	var refs []cow.TagRef
	for _, i := range idx {
		m := member("Tag", i)
		key, ok := p.get(m + ".Key")
		if !ok {
			return nil, missingParam(m + ".Key")
		}
		ref := cow.TagRef{Key: key}
		if v, ok := p.get(m + ".Value"); ok {
			ref.Value = &v
		}
		refs = append(refs, ref)
	}
	if e := p.unknown(); e != nil {
		return nil, e
	}
	if idsErr != nil {
		return nil, idsErr
	}
	c := cow.TagChange{ResourceIDs: ids, Delete: refs, DeleteAll: len(refs) == 0, DryRun: dryRun}
	if err := s.changeTags(ctx, c); err != nil {
		return nil, err
	}
	return &DeleteTagsResponse{Return: true}, nil
}

// changeTags has the engine carry out c and translates its errors;
// a dry run that would succeed answers DryRunOperation.
func (s *Server) changeTags(ctx context.Context, c cow.TagChange) error {
	tb, e := optionalBackend[tagBackend](s, "tags")
	if e != nil {
		return e
	}
	err := tb.ChangeTags(ctx, c)
	if err == nil && c.DryRun {
		return errDryRun()
	}
	if err != nil {
		return tagError("change tags", err)
	}
	return nil
}

// tagError translates an engine error of a tag or permission call.
func tagError(op string, err error) error {
	id := ""
	var re *cow.ResourceError
	if errors.As(err, &re) {
		id = re.ID
	}
	switch {
	case errors.Is(err, cow.ErrInvalidResourceID):
		return invalidID(id)
	case errors.Is(err, cow.ErrTagLimitExceeded):
		return apiErr(CodeTagLimitExceeded, "The maximum number of Tags for a resource has been reached (%d)%s.", cow.MaxTags, onResource(id))
	case errors.Is(err, cow.ErrNotOwner):
		ae, _ := backendError(err, id)
		return ae
	case errors.Is(err, cow.ErrInvalidParameter):
		// EC2's wording, without the sentinel's "invalid parameter: ".
		return invalidValue("%s", sentence(detail(err, cow.ErrInvalidParameter)))
	}
	return backendErr(op, err, id)
}

func onResource(id string) string {
	if id == "" {
		return ""
	}
	return ": " + id
}

// tagFilters are DescribeTags' filters, on a tag of a resource.
var tagFilters = map[string]func(d *TagDescription) string{
	"key":           func(d *TagDescription) string { return d.Key },
	"value":         func(d *TagDescription) string { return d.Value },
	"resource-id":   func(d *TagDescription) string { return d.ResourceID },
	"resource-type": func(d *TagDescription) string { return d.ResourceType },
}

// describeTags: Filter.N (key, value, resource-id, resource-type),
// MaxResults (5 to 1000; more gives pages of 1000), NextToken, DryRun.
func (s *Server) describeTags(ctx context.Context, p *params) (response, error) {
	dryRun, e := p.boolean("DryRun")
	if e != nil {
		return nil, e
	}
	filters, e := readFilters(p)
	if e != nil {
		return nil, e
	}
	maxResults, hasMax, e := p.integer("MaxResults")
	if e != nil {
		return nil, e
	}
	token, _ := p.get("NextToken")
	if e := p.unknown(); e != nil {
		return nil, e
	}
	for _, f := range filters {
		if _, ok := tagFilters[f.Name]; !ok {
			return nil, invalidValue("The filter '%s' is invalid", clip(f.Name))
		}
	}
	if hasMax && maxResults < minDescribeResults {
		return nil, invalidValue("Value ( %d ) for parameter maxResults is invalid. Expecting a value between %d and %d.",
			maxResults, minDescribeResults, maxDescribeTags)
	}
	after, e := decodeTagToken(token)
	if e != nil {
		return nil, e
	}
	if dryRun {
		return nil, errDryRun()
	}
	all, err := s.tagDescriptions(ctx)
	if err != nil {
		return nil, err
	}
	limit := int(min(maxResults, maxDescribeTags))
	out := &DescribeTagsResponse{TagSet: TagDescriptions{Items: []TagDescription{}}}
	for i := range all {
		d := &all[i]
		if after != "" && tagPosition(d) <= after || !tagMatches(d, filters) {
			continue
		}
		if hasMax && len(out.TagSet.Items) == limit {
			out.NextToken = base64.RawURLEncoding.EncodeToString([]byte(tagPosition(&out.TagSet.Items[limit-1])))
			break
		}
		out.TagSet.Items = append(out.TagSet.Items, *d)
	}
	return out, nil
}

// tagPosition orders tags (by resource, then key) and names a page's end.
func tagPosition(d *TagDescription) string { return d.ResourceID + "\x00" + d.Key }

func decodeTagToken(token string) (string, *APIError) {
	if token == "" {
		return "", nil
	}
	b, err := base64.RawURLEncoding.DecodeString(token)
	id, _, found := strings.Cut(string(b), "\x00")
	if err != nil || !found || !cow.ValidVolumeID(id) && !cow.ValidSnapshotID(id) {
		return "", apiErr(CodeInvalidPaginationToken, "The pagination token '%s' is invalid.", clip(token))
	}
	return string(b), nil
}

func tagMatches(d *TagDescription, filters []Filter) bool {
	for _, f := range filters {
		if !matchAny(f.Values, tagFilters[f.Name](d)) {
			return false
		}
	}
	return true
}

// tagDescriptions lists the tags of the account's volumes and snapshots,
// in tagPosition order.
func (s *Server) tagDescriptions(ctx context.Context) ([]TagDescription, error) {
	vols, err := s.backend.DescribeVolumes(ctx)
	if err != nil {
		return nil, backendErr("describe volumes", err, "")
	}
	snaps, err := s.backend.DescribeSnapshots(ctx)
	if err != nil {
		return nil, backendErr("describe snapshots", err, "")
	}
	var out []TagDescription
	add := func(id, typ string, tags []cow.Tag) {
		for _, t := range tags {
			out = append(out, TagDescription{ResourceID: id, ResourceType: typ, Key: t.Key, Value: t.Value})
		}
	}
	for _, v := range vols {
		if v.State != cow.VolumeDeleting {
			add(v.ID, resourceTypeVolume, v.Tags)
		}
	}
	for _, si := range snaps {
		if cmp.Or(si.OwnerID, s.account) == s.account {
			add(si.ID, resourceTypeSnapshot, si.Tags)
		}
	}
	slices.SortFunc(out, func(a, b TagDescription) int { return cmp.Compare(tagPosition(&a), tagPosition(&b)) })
	return out, nil
}
