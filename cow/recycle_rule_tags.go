package cow

import (
	"context"
	"fmt"
	"slices"
)

// RetagRecycleRule changes rule id's own tags (the Recycle Bin's
// TagResource and UntagResource): the tags in add are set (a key it has
// takes the new value), then the keys in remove dropped. The result is
// checked as EC2 tags (ValidateTags: ErrInvalidParameter or
// ErrTagLimitExceeded) and stored durably; nothing changes on an error.
func (e *Engine) RetagRecycleRule(_ context.Context, id string, add []RecycleRuleTag, remove []string) (RecycleRule, error) {
	return e.rules.retag(id, add, remove)
}

// retag changes rule id's own tags: the tags in add are set (a key it has
// takes the new value), then the keys in remove dropped. The result is
// checked as EC2 tags and stored durably; nothing changes on an error.
func (rb ruleBook) retag(id string, add []RecycleRuleTag, remove []string) (RecycleRule, error) {
	rb.mu.Lock()
	defer rb.mu.Unlock()
	r, err := rb.get(id)
	if err != nil {
		return RecycleRule{}, err
	}
	tags := slices.Clone(r.Tags)
	for _, t := range add {
		if i := slices.IndexFunc(tags, func(c RecycleRuleTag) bool { return c.Key == t.Key }); i >= 0 {
			tags[i].Value = t.Value
		} else {
			tags = append(tags, t)
		}
	}
	tags = slices.DeleteFunc(tags, func(t RecycleRuleTag) bool { return slices.Contains(remove, t.Key) })
	check := make([]Tag, len(tags))
	for i, t := range tags {
		check[i] = Tag{Key: t.Key, Value: t.Value}
	}
	if err := ValidateTags(check); err != nil {
		return RecycleRule{}, fmt.Errorf("tags of rule %s: %w", id, err)
	}
	if len(tags) == 0 {
		tags = nil
	}
	r.Tags = tags
	if err := rb.records.PutRecycleRule(r); err != nil {
		return RecycleRule{}, err
	}
	if err := rb.sync(); err != nil {
		return RecycleRule{}, err
	}
	rb.log.Info("recycle bin rule tagged", "rule", id, "tags", len(tags))
	return r, nil
}
