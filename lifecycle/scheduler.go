package lifecycle

import (
	"cmp"
	"context"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/cowvol/cowvol/cow"
)

// Engine is what the scheduler needs of the engine; *cow.Engine
// satisfies it.
type Engine interface {
	DescribeVolumes(ctx context.Context) ([]cow.VolumeInfo, error)
	DescribeSnapshots(ctx context.Context) ([]cow.SnapshotInfo, error)
	CreateSnapshot(ctx context.Context, p cow.CreateSnapshotParams) (cow.SnapshotInfo, error)
	DeleteSnapshot(ctx context.Context, id string) error
}

var _ Engine = (*cow.Engine)(nil)

// Defaults of Config.
const (
	DefaultTick      = 30 * time.Second
	DefaultMaxJitter = 10 * time.Minute
)

// Config configures a Scheduler.
type Config struct {
	Engine Engine
	// DeleteSnapshot deletes the snapshots retention expires. Nil means
	// Engine.DeleteSnapshot. This is where a deletion that must honour
	// the Recycle Bin's rules is wired in, if the engine's own
	// DeleteSnapshot does not.
	DeleteSnapshot func(ctx context.Context, id string) error
	// AccountID owns the snapshots the scheduler may delete (a shared
	// store holds other accounts' too).
	AccountID string
	// Tick is how often the scheduler looks for due work. Zero means
	// DefaultTick.
	Tick time.Duration
	// MaxJitter bounds the offset of each volume's snapshot after a
	// scheduled time (it is also at most a tenth of the time between
	// runs). Zero means DefaultMaxJitter; negative, no jitter.
	MaxJitter time.Duration
	Logger    *slog.Logger
}

// Scheduler runs the enabled policies of a Manager: it creates the
// snapshots that are due and deletes those retention expires.
type Scheduler struct {
	m   *Manager
	cfg Config
	log *slog.Logger
	// countDue are the (policy, schedule, volume) whose retention by
	// count is due (countKey): as DLM's, a count is enforced when a
	// schedule creates a snapshot, not continuously, so a snapshot
	// restored from the Recycle Bin stays until the next run. A pass that
	// could not delete everything stays due. Owned by the caller of Tick.
	countDue map[string]bool
	// started: the first Tick enforces every count once (a deletion
	// missed when the daemon stopped right after a creation).
	started bool
}

// NewScheduler returns a scheduler of m's policies.
func NewScheduler(m *Manager, cfg Config) *Scheduler {
	if cfg.DeleteSnapshot == nil {
		cfg.DeleteSnapshot = cfg.Engine.DeleteSnapshot
	}
	if cfg.Tick <= 0 {
		cfg.Tick = DefaultTick
	}
	if cfg.MaxJitter == 0 {
		cfg.MaxJitter = DefaultMaxJitter
	}
	log := cmp.Or(cfg.Logger, slog.Default()).With("component", "lifecycle")
	return &Scheduler{m: m, cfg: cfg, log: log, countDue: map[string]bool{}}
}

// countKey names one volume's snapshots of one schedule in countDue.
func countKey(policyID, schedule, volumeID string) string {
	return policyID + "\x00" + schedule + "\x00" + volumeID
}

// Run runs policies every Tick until ctx is done. Its caller owns it (the
// daemon's server runs it in one goroutine and cancels ctx to stop it).
func (s *Scheduler) Run(ctx context.Context) {
	t := time.NewTicker(s.cfg.Tick)
	defer t.Stop()
	for {
		if err := s.Tick(ctx); err != nil && ctx.Err() == nil {
			s.log.Warn("lifecycle policies: a pass failed; retrying at the next tick", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// Tick runs one pass at the Manager's now: the snapshots due, then
// retention.
func (s *Scheduler) Tick(ctx context.Context) error {
	now := s.m.now().UTC()
	var enabled []Policy
	for _, p := range s.m.List() {
		if p.State == StateEnabled {
			enabled = append(enabled, p)
		}
	}
	if len(enabled) == 0 {
		return nil
	}
	vols, err := s.cfg.Engine.DescribeVolumes(ctx)
	if err != nil {
		return fmt.Errorf("describe volumes: %w", err)
	}
	for _, p := range enabled {
		for _, sch := range p.Details.Schedules {
			if err := s.serve(ctx, &p, sch, vols, now); err != nil && ctx.Err() == nil {
				s.log.Warn("lifecycle policy: a schedule failed; retrying at the next tick", "policy", p.ID,
					"schedule", sch.Name, "err", err)
			}
		}
	}
	snaps, err := s.cfg.Engine.DescribeSnapshots(ctx)
	if err != nil {
		return fmt.Errorf("describe snapshots: %w", err)
	}
	for _, p := range enabled {
		for _, sch := range p.Details.Schedules {
			s.retain(ctx, &p, sch, vols, snaps, now)
		}
	}
	s.started = true
	return nil
}

// serve creates the snapshots of one schedule due at now.
func (s *Scheduler) serve(ctx context.Context, p *Policy, sch Schedule, vols []cow.VolumeInfo, now time.Time) error {
	tm, err := newTiming(sch.CreateRule)
	if err != nil {
		return fmt.Errorf("policy %s schedule %q: %w", p.ID, sch.Name, err)
	}
	key := runKey(p.ID, sch.Name)
	var limit time.Duration
	rs, err := s.m.advance(p.ID, key, func(rs *runState) *runState {
		if rs == nil {
			rs = &runState{Instant: p.Modified, Opened: p.Modified, Baseline: true}
		}
		if due := tm.latestDue(rs.Instant, now); !due.IsZero() {
			// Found late (the daemon was down): the jitter counts from
			// now, so that the missed run is spread too.
			limit = jitterLimit(tm.spacing(due), s.cfg.MaxJitter)
			opened := due
			if now.Sub(due) > limit {
				opened = now
			}
			rs = &runState{Instant: due, Opened: opened}
		}
		return rs
	})
	if err != nil || rs == nil || rs.Baseline {
		return err
	}
	limit = jitterLimit(tm.spacing(rs.Instant), s.cfg.MaxJitter)
	start := rs.Instant
	if rs.Opened.After(start) {
		start = rs.Opened
	}
	for _, v := range vols {
		if ctx.Err() != nil {
			return ctx.Err() // stopping: the rest is served after the restart
		}
		if v.State == cow.VolumeDeleting || slices.Contains(rs.Done, v.ID) || !p.targets(tagMap(v.Tags)) {
			continue
		}
		if now.Before(start.Add(jitter(p.ID, sch.Name, v.ID, limit))) {
			continue
		}
		snap, err := s.cfg.Engine.CreateSnapshot(ctx, snapshotParams(p, sch, v))
		if err != nil {
			s.log.Warn("lifecycle policy: cannot create a snapshot; retrying at the next tick", "policy", p.ID,
				"schedule", sch.Name, "volume", v.ID, "err", err)
			continue
		}
		s.log.Info("lifecycle policy created a snapshot", "policy", p.ID, "schedule", sch.Name, "volume", v.ID,
			"snapshot", snap.ID, "scheduled", rs.Instant)
		s.countDue[countKey(p.ID, sch.Name, v.ID)] = true
		if err := s.m.markDone(p.ID, key, rs.Instant, v.ID); err != nil {
			return err
		}
	}
	return nil
}

// snapshotParams are the snapshot a schedule makes of volume v.
func snapshotParams(p *Policy, sch Schedule, v cow.VolumeInfo) cow.CreateSnapshotParams {
	var tags []cow.Tag
	set := func(k, val string) {
		if i := slices.IndexFunc(tags, func(t cow.Tag) bool { return t.Key == k }); i >= 0 {
			tags[i].Value = val
		} else {
			tags = append(tags, cow.Tag{Key: k, Value: val})
		}
	}
	if sch.CopyTags {
		for _, t := range v.Tags {
			if !strings.HasPrefix(strings.ToLower(t.Key), "aws:") {
				set(t.Key, t.Value)
			}
		}
	}
	for _, t := range sch.TagsToAdd {
		set(t.Key, t.Value)
	}
	if len(tags) > cow.MaxTags-2 {
		tags = tags[:cow.MaxTags-2] // the policy's own two tags come first
	}
	return cow.CreateSnapshotParams{
		VolumeID:    v.ID,
		Description: fmt.Sprintf("Created for policy: %s schedule: %s", p.ID, sch.Name),
		Tags:        tags,
		SystemTags:  []cow.Tag{{Key: TagPolicyID, Value: p.ID}, {Key: TagScheduleName, Value: sch.Name}},
	}
}

// retain deletes the snapshots of one schedule its RetainRule expires,
// as DLM does: of the volumes the policy targets, and of volumes deleted
// since (but never their last snapshot); a volume no longer targeted
// (its tags changed) keeps its snapshots. A retention by age is checked at
// every tick; one by count when the schedule made a snapshot of the volume
// (countDue).
func (s *Scheduler) retain(ctx context.Context, p *Policy, sch Schedule, vols []cow.VolumeInfo, snaps []cow.SnapshotInfo, now time.Time) {
	if sch.RetainRule == nil {
		return
	}
	exists := map[string]bool{}
	untargeted := map[string]bool{}
	for _, v := range vols {
		exists[v.ID] = true
		untargeted[v.ID] = !p.targets(tagMap(v.Tags))
	}
	byVolume := map[string][]made{}
	for _, sn := range snaps {
		if sn.OwnerID != "" && s.cfg.AccountID != "" && sn.OwnerID != s.cfg.AccountID {
			continue
		}
		tags := tagMap(sn.Tags)
		if tags[TagPolicyID] != p.ID || tags[TagScheduleName] != sch.Name {
			continue
		}
		byVolume[sn.VolumeID] = append(byVolume[sn.VolumeID], made{ID: sn.ID, VolumeID: sn.VolumeID, Start: sn.StartTime,
			Settled: sn.State != cow.SnapshotPending})
	}
	for _, vol := range slices.Sorted(maps.Keys(byVolume)) {
		key := countKey(p.ID, sch.Name, vol)
		if untargeted[vol] || (sch.RetainRule.Count > 0 && s.started && !s.countDue[key]) {
			continue
		}
		delete(s.countDue, key)
		for _, m := range expired(sch.RetainRule, byVolume[vol], now, !exists[vol]) {
			if ctx.Err() != nil {
				s.countDue[key] = true
				return
			}
			if err := s.cfg.DeleteSnapshot(ctx, m.ID); err != nil {
				s.log.Warn("lifecycle policy: cannot delete an expired snapshot; retrying at the next tick", "policy", p.ID,
					"schedule", sch.Name, "snapshot", m.ID, "err", err)
				s.countDue[key] = true
				continue
			}
			s.log.Info("lifecycle policy deleted an expired snapshot", "policy", p.ID, "schedule", sch.Name,
				"volume", vol, "snapshot", m.ID, "started", m.Start)
		}
	}
}

func tagMap(tags []cow.Tag) map[string]string {
	m := make(map[string]string, len(tags))
	for _, t := range tags {
		m[t.Key] = t.Value
	}
	return m
}
