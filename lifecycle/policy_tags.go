package lifecycle

import (
	"maps"
	"slices"
)

// TagPolicy adds tags to policy id's own tags (DLM's TagResource), a
// key already there taking the new value. The policy's schedules and its
// DateModified are unchanged, as DLM's.
func (m *Manager) TagPolicy(id string, tags map[string]string) (Policy, error) {
	if len(tags) == 0 {
		return Policy{}, invalidf("Tags must have at least one tag.")
	}
	return m.retag(id, func(cur map[string]string) map[string]string {
		next := maps.Clone(cur)
		if next == nil {
			next = map[string]string{}
		}
		maps.Copy(next, tags)
		return next
	})
}

// UntagPolicy removes the tags with the given keys from policy id's own
// tags (DLM's UntagResource); a key it does not have is no error.
func (m *Manager) UntagPolicy(id string, keys []string) (Policy, error) {
	if len(keys) == 0 {
		return Policy{}, invalidf("TagKeys must have at least one key.")
	}
	return m.retag(id, func(cur map[string]string) map[string]string {
		next := maps.Clone(cur)
		maps.DeleteFunc(next, func(k, _ string) bool { return slices.Contains(keys, k) })
		if len(next) == 0 {
			return nil
		}
		return next
	})
}

// retag replaces policy id's tags by what change makes of them, checked
// and stored; nothing changes if either fails.
func (m *Manager) retag(id string, change func(map[string]string) map[string]string) (Policy, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	p, i, err := m.findLocked(id)
	if err != nil {
		return Policy{}, err
	}
	next := clonePolicy(p)
	next.Tags = change(p.Tags)
	if err := validatePolicyTags(next.Tags); err != nil {
		return Policy{}, err
	}
	m.st.Policies[i] = &next
	if err := m.store.save(m.st); err != nil {
		m.st.Policies[i] = p
		return Policy{}, err
	}
	return clonePolicy(&next), nil
}
