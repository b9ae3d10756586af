package lifecycle

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"sync"
	"time"
)

// Manager keeps the policies and the scheduler's progress, durably: the
// DLM API's operations and the Scheduler share it.
type Manager struct {
	limits Limits
	now    func() time.Time

	mu    sync.Mutex
	store store
	st    *state
}

// Open loads the policies kept in dir (created if need be).
func Open(dir string, limits Limits, now func() time.Time) (*Manager, error) {
	if now == nil {
		now = time.Now
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("lifecycle state: %w", err)
	}
	m := &Manager{limits: limits, now: now, store: store{path: filepath.Join(dir, StateFile)}}
	st, err := m.store.load()
	if err != nil {
		return nil, err
	}
	m.st = st
	return m, nil
}

var policyIDRE = regexp.MustCompile(`^policy-[0-9a-f]{17}$`)

func validPolicyID(id string) bool { return policyIDRE.MatchString(id) }

func newPolicyID() string {
	var b [9]byte
	rand.Read(b[:])
	return "policy-" + hex.EncodeToString(b[:])[:17]
}

// CreateParams are CreateLifecyclePolicy's.
type CreateParams struct {
	Description      string
	State            string
	ExecutionRoleArn string
	Details          *PolicyDetails
	Tags             map[string]string
}

// Create validates and stores a new policy and returns it.
func (m *Manager) Create(p CreateParams) (Policy, error) {
	switch {
	case p.ExecutionRoleArn == "":
		return Policy{}, invalidf("ExecutionRoleArn is required.")
	case p.Details == nil:
		return Policy{}, invalidf("PolicyDetails is required.")
	}
	if err := validateDescription(p.Description); err != nil {
		return Policy{}, err
	}
	if err := validateState(p.State); err != nil {
		return Policy{}, err
	}
	if err := validatePolicyTags(p.Tags); err != nil {
		return Policy{}, err
	}
	d := clonePolicyDetails(*p.Details)
	if err := validateDetails(&d, m.limits); err != nil {
		return Policy{}, err
	}
	now := m.now().UTC().Truncate(time.Millisecond)
	pol := &Policy{ID: newPolicyID(), Description: p.Description, State: p.State, ExecutionRoleArn: p.ExecutionRoleArn,
		Details: d, Tags: maps.Clone(p.Tags), Created: now, Modified: now}
	m.mu.Lock()
	defer m.mu.Unlock()
	if len(m.st.Policies) >= MaxPolicies {
		return Policy{}, &Error{Kind: ErrLimitExceeded, Message: fmt.Sprintf("At most %d lifecycle policies.", MaxPolicies)}
	}
	m.st.Policies = append(m.st.Policies, pol)
	if err := m.store.save(m.st); err != nil {
		m.st.Policies = m.st.Policies[:len(m.st.Policies)-1]
		return Policy{}, err
	}
	return clonePolicy(pol), nil
}

// Get returns policy id.
func (m *Manager) Get(id string) (Policy, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	p, _, err := m.findLocked(id)
	if err != nil {
		return Policy{}, err
	}
	return clonePolicy(p), nil
}

// List returns every policy, oldest first.
func (m *Manager) List() []Policy {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]Policy, 0, len(m.st.Policies))
	for _, p := range m.st.Policies {
		out = append(out, clonePolicy(p))
	}
	return out
}

// UpdateParams are UpdateLifecyclePolicy's: each field set replaces the
// policy's.
type UpdateParams struct {
	Description      *string
	State            *string
	ExecutionRoleArn *string
	Details          *PolicyDetails
}

// Update changes policy id. A schedule whose CreateRule changed, or every
// schedule of a policy being enabled, starts afresh: its first run is at
// its first scheduled time after the update.
func (m *Manager) Update(id string, u UpdateParams) (Policy, error) {
	if u.Description != nil {
		if err := validateDescription(*u.Description); err != nil {
			return Policy{}, err
		}
	}
	if u.State != nil {
		if err := validateState(*u.State); err != nil {
			return Policy{}, err
		}
	}
	if u.ExecutionRoleArn != nil && *u.ExecutionRoleArn == "" {
		return Policy{}, invalidf("ExecutionRoleArn must not be empty.")
	}
	var details *PolicyDetails
	if u.Details != nil {
		d := clonePolicyDetails(*u.Details)
		if err := validateDetails(&d, m.limits); err != nil {
			return Policy{}, err
		}
		details = &d
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	p, i, err := m.findLocked(id)
	if err != nil {
		return Policy{}, err
	}
	old := clonePolicy(p)
	next := clonePolicy(p)
	if u.Description != nil {
		next.Description = *u.Description
	}
	if u.State != nil {
		next.State = *u.State
	}
	if u.ExecutionRoleArn != nil {
		next.ExecutionRoleArn = *u.ExecutionRoleArn
	}
	if details != nil {
		next.Details = *details
	}
	next.Modified = m.now().UTC().Truncate(time.Millisecond)
	oldRuns := maps.Clone(m.st.Runs)
	m.resetRunsLocked(old, next)
	m.st.Policies[i] = &next
	if err := m.store.save(m.st); err != nil {
		m.st.Policies[i], m.st.Runs = p, oldRuns
		return Policy{}, err
	}
	return clonePolicy(&next), nil
}

// resetRunsLocked forgets the progress of schedules that start afresh
// (see Update) or are gone.
func (m *Manager) resetRunsLocked(old, next Policy) {
	enabling := old.State != StateEnabled && next.State == StateEnabled
	for _, s := range old.Details.Schedules {
		j := slices.IndexFunc(next.Details.Schedules, func(n Schedule) bool { return n.Name == s.Name })
		if enabling || j < 0 || !reflect.DeepEqual(s.CreateRule, next.Details.Schedules[j].CreateRule) {
			delete(m.st.Runs, runKey(old.ID, s.Name))
		}
	}
}

// Delete removes policy id; the snapshots it made stay.
func (m *Manager) Delete(id string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	p, i, err := m.findLocked(id)
	if err != nil {
		return err
	}
	oldRuns := maps.Clone(m.st.Runs)
	for _, s := range p.Details.Schedules {
		delete(m.st.Runs, runKey(id, s.Name))
	}
	m.st.Policies = slices.Delete(m.st.Policies, i, i+1)
	if err := m.store.save(m.st); err != nil {
		m.st.Policies = slices.Insert(m.st.Policies, i, p)
		m.st.Runs = oldRuns
		return err
	}
	return nil
}

func (m *Manager) findLocked(id string) (*Policy, int, error) {
	for i, p := range m.st.Policies {
		if p.ID == id {
			return p, i, nil
		}
	}
	return nil, -1, &Error{Kind: ErrNotFound, Message: fmt.Sprintf("Policy %s does not exist.", id)}
}

func clonePolicy(p *Policy) Policy {
	c := *p
	c.Details = clonePolicyDetails(p.Details)
	c.Tags = maps.Clone(p.Tags)
	return c
}

func clonePolicyDetails(d PolicyDetails) PolicyDetails {
	c := d
	c.ResourceTypes = slices.Clone(d.ResourceTypes)
	c.ResourceLocations = slices.Clone(d.ResourceLocations)
	c.TargetTags = slices.Clone(d.TargetTags)
	c.Schedules = make([]Schedule, len(d.Schedules))
	for i, s := range d.Schedules {
		c.Schedules[i] = s
		c.Schedules[i].TagsToAdd = slices.Clone(s.TagsToAdd)
		if s.CreateRule != nil {
			r := *s.CreateRule
			r.Times = slices.Clone(r.Times)
			c.Schedules[i].CreateRule = &r
		}
		if s.RetainRule != nil {
			r := *s.RetainRule
			c.Schedules[i].RetainRule = &r
		}
	}
	return c
}

// advance changes the progress of schedule key of policy id with f and
// stores it if it changed. It returns the progress (nil if the policy is
// gone).
func (m *Manager) advance(id, key string, f func(*runState) *runState) (*runState, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, _, err := m.findLocked(id); err != nil {
		return nil, nil
	}
	old := m.st.Runs[key]
	var cur *runState
	if old != nil {
		c := *old
		c.Done = slices.Clone(old.Done)
		cur = &c
	}
	next := f(cur)
	if next == nil || (old != nil && reflect.DeepEqual(old, next)) {
		return next, nil
	}
	m.st.Runs[key] = next
	if err := m.store.save(m.st); err != nil {
		if old == nil {
			delete(m.st.Runs, key)
		} else {
			m.st.Runs[key] = old
		}
		return nil, err
	}
	c := *next
	c.Done = slices.Clone(next.Done)
	return &c, nil
}

// markDone records that schedule key of policy id made its snapshot of
// volume for the scheduled time instant (unless the schedule has moved
// on or the policy is gone).
func (m *Manager) markDone(id, key string, instant time.Time, volume string) error {
	_, err := m.advance(id, key, func(rs *runState) *runState {
		if rs != nil && rs.Instant.Equal(instant) && !slices.Contains(rs.Done, volume) {
			rs.Done = append(rs.Done, volume)
		}
		return rs
	})
	return err
}
