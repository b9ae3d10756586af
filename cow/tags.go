package cow

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"unicode/utf8"

	"github.com/cowvol/cowvol/meta"
)

// Tags as EC2 has them: at most MaxTags per resource, keys of 1 to
// MaxTagKeyLen characters and values of up to MaxTagValueLen (Unicode
// characters, as EC2's user guide counts them), keys unique per resource,
// and keys beginning with aws: (in any case) reserved.
//
// Where tags live: a volume's in its record (Badger); a snapshot's in its
// record as created and, once CreateTags or DeleteTags changed them, in
// its attributes (snapshot_attributes.go): a Badger record of the daemon
// that owns the snapshot and an object beside the snapshot's manifest in
// the snapshot store, so that every daemon sharing the store sees them.

// Limits on tags, as EC2 documents them.
const (
	MaxTags        = 50
	MaxTagKeyLen   = 128
	MaxTagValueLen = 256
)

// reservedTagPrefix begins the keys of tags only AWS may set.
const reservedTagPrefix = "aws:"

// ErrTagLimitExceeded: a resource would have more than MaxTags tags.
var ErrTagLimitExceeded = errors.New("tag limit exceeded")

// ErrInvalidResourceID: a resource ID that is neither a volume's nor a
// snapshot's.
var ErrInvalidResourceID = errors.New("invalid resource ID")

// ResourceError names the resource a call that takes many failed on.
type ResourceError struct {
	ID  string
	Err error
}

func (e *ResourceError) Error() string { return e.ID + ": " + e.Err.Error() }
func (e *ResourceError) Unwrap() error { return e.Err }

// ValidateTagKey checks one key: not empty, not too long, not reserved.
func ValidateTagKey(key string) error {
	switch {
	case key == "":
		return fmt.Errorf("%w: a tag key must not be empty", ErrInvalidParameter)
	case !utf8.ValidString(key):
		return fmt.Errorf("%w: a tag key must be UTF-8", ErrInvalidParameter)
	case utf8.RuneCountInString(key) > MaxTagKeyLen:
		return fmt.Errorf("%w: tag key exceeds the maximum length of %d characters", ErrInvalidParameter, MaxTagKeyLen)
	case strings.HasPrefix(strings.ToLower(key), reservedTagPrefix):
		return fmt.Errorf("%w: tag keys starting with 'aws:' are reserved for internal use (%q)", ErrInvalidParameter, key)
	}
	return nil
}

// ValidateTags checks tags given to one resource the way EC2 does: at most
// MaxTags, each key valid and unique, each value not too long.
func ValidateTags(tags []Tag) error {
	if len(tags) > MaxTags {
		return fmt.Errorf("%w: %d tags (at most %d per resource)", ErrTagLimitExceeded, len(tags), MaxTags)
	}
	seen := make(map[string]bool, len(tags))
	for _, t := range tags {
		if err := ValidateTagKey(t.Key); err != nil {
			return err
		}
		switch {
		case !utf8.ValidString(t.Value):
			return fmt.Errorf("%w: a tag value must be UTF-8", ErrInvalidParameter)
		case utf8.RuneCountInString(t.Value) > MaxTagValueLen:
			return fmt.Errorf("%w: tag value exceeds the maximum length of %d characters", ErrInvalidParameter, MaxTagValueLen)
		case seen[t.Key]:
			return fmt.Errorf("%w: duplicate tag key %q", ErrInvalidParameter, t.Key)
		}
		seen[t.Key] = true
	}
	return nil
}

// TagRef names a tag to delete: by key, or by key and value (Value set:
// only if the tag has that value).
type TagRef struct {
	Key   string
	Value *string
}

// TagChange is a CreateTags or DeleteTags call: tags to set (replacing the
// values of keys the resources have) or to delete (DeleteAll: every tag),
// on every resource named. DryRun checks the call and changes nothing.
type TagChange struct {
	ResourceIDs []string
	Set         []Tag
	Delete      []TagRef
	DeleteAll   bool
	DryRun      bool
}

// apply returns tags changed by c.
func (c TagChange) apply(tags []Tag) []Tag {
	out := slices.Clone(tags)
	if c.DeleteAll {
		out = nil
	}
	for _, d := range c.Delete {
		out = slices.DeleteFunc(out, func(t Tag) bool { return t.Key == d.Key && (d.Value == nil || *d.Value == t.Value) })
	}
	for _, s := range c.Set {
		if i := slices.IndexFunc(out, func(t Tag) bool { return t.Key == s.Key }); i >= 0 {
			out[i].Value = s.Value
		} else {
			out = append(out, s)
		}
	}
	return out
}

// check refuses a change whose tags are invalid.
func (c TagChange) check() error {
	if err := ValidateTags(c.Set); err != nil {
		return err
	}
	for _, d := range c.Delete {
		if err := ValidateTagKey(d.Key); err != nil {
			return err
		}
	}
	return nil
}

// ChangeTags carries out a CreateTags or DeleteTags call. Every resource
// must exist (a snapshot must be this account's) and keep at most MaxTags
// tags; if one does not, nothing changes and the error (a *ResourceError)
// names it. Resources are changed one after the other: a failure of the
// metadata store or the snapshot store part way leaves the earlier ones
// changed.
func (e *Engine) ChangeTags(ctx context.Context, c TagChange) error {
	if err := c.check(); err != nil {
		return err
	}
	type target struct {
		vol  *volume
		snap *snapshot
	}
	targets := make([]target, 0, len(c.ResourceIDs))
	for _, id := range c.ResourceIDs {
		var t target
		var err error
		var tags []Tag
		switch {
		case ValidVolumeID(id):
			if t.vol, err = e.lookupLive(id); err == nil {
				t.vol.mapMu.Lock()
				tags = tagsFromMeta(t.vol.record.Tags)
				t.vol.mapMu.Unlock()
			}
		case ValidSnapshotID(id):
			if t.snap, err = e.ownSnapshot(ctx, id); err == nil {
				tags = tagsFromMeta(t.snap.attributes().Tags)
			}
		default:
			err = ErrInvalidResourceID
		}
		if err == nil {
			if n := len(c.apply(tags)); n > MaxTags {
				err = fmt.Errorf("%w: the resource would have %d tags (at most %d)", ErrTagLimitExceeded, n, MaxTags)
			}
		}
		if err != nil {
			return &ResourceError{ID: id, Err: err}
		}
		targets = append(targets, t)
	}
	if c.DryRun {
		return nil
	}
	for i, t := range targets {
		var err error
		if t.vol != nil {
			err = t.vol.updateRecord(func(r *meta.VolumeRecord) {
				r.Tags = tagsToMeta(c.apply(tagsFromMeta(r.Tags)))
			}, nil)
		} else {
			err = e.changeSnapshotAttributes(ctx, t.snap, func(a *meta.SnapshotAttributes) {
				a.Tags = tagsToMeta(c.apply(tagsFromMeta(a.Tags)))
			})
		}
		if err != nil {
			return &ResourceError{ID: c.ResourceIDs[i], Err: err}
		}
	}
	return nil
}

// lookupLive finds volume id unless it is being deleted.
func (e *Engine) lookupLive(id string) (*volume, error) {
	v, err := e.lookup(id)
	if err != nil {
		return nil, err
	}
	v.mapMu.Lock()
	gone := v.doomed || v.record.Deleting
	v.mapMu.Unlock()
	if gone {
		return nil, fmt.Errorf("%w: %s", ErrVolumeNotFound, id)
	}
	return v, nil
}

// ownSnapshot finds snapshot id, which must be this account's.
func (e *Engine) ownSnapshot(ctx context.Context, id string) (*snapshot, error) {
	s, err := e.lookupSnapshot(ctx, id)
	if err != nil {
		return nil, err
	}
	if s.owner != "" && s.owner != e.accountID {
		return nil, fmt.Errorf("snapshot %s: %w %s", id, ErrNotOwner, s.owner)
	}
	return s, nil
}

// validateSystemTags checks tags the daemon sets itself: each key under
// aws:, not too long, unique; with the client's other tags, at most
// MaxTags.
func validateSystemTags(tags []Tag, others int) error {
	if others+len(tags) > MaxTags {
		return fmt.Errorf("%w: %d tags (at most %d per resource)", ErrTagLimitExceeded, others+len(tags), MaxTags)
	}
	seen := make(map[string]bool, len(tags))
	for _, t := range tags {
		if !strings.HasPrefix(strings.ToLower(t.Key), reservedTagPrefix) || utf8.RuneCountInString(t.Key) > MaxTagKeyLen ||
			utf8.RuneCountInString(t.Value) > MaxTagValueLen || seen[t.Key] {
			return fmt.Errorf("%w: system tag %q", ErrInvalidParameter, t.Key)
		}
		seen[t.Key] = true
	}
	return nil
}
