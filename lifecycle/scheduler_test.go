package lifecycle

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/cowvol/cowvol/cow"
)

// fakeEngine keeps volumes and snapshots in memory.
type fakeEngine struct {
	mu      sync.Mutex
	now     func() time.Time
	vols    []cow.VolumeInfo
	snaps   []cow.SnapshotInfo
	deleted []string
	n       int
}

func (f *fakeEngine) DescribeVolumes(context.Context) ([]cow.VolumeInfo, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.vols), nil
}

func (f *fakeEngine) DescribeSnapshots(context.Context) ([]cow.SnapshotInfo, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.snaps), nil
}

func (f *fakeEngine) CreateSnapshot(_ context.Context, p cow.CreateSnapshotParams) (cow.SnapshotInfo, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.n++
	s := cow.SnapshotInfo{ID: fmt.Sprintf("snap-%017d", f.n), VolumeID: p.VolumeID, State: cow.SnapshotCompleted,
		StartTime: f.now(), Description: p.Description, Tags: append(slices.Clone(p.Tags), p.SystemTags...)}
	f.snaps = append(f.snaps, s)
	return s, nil
}

func (f *fakeEngine) DeleteSnapshot(_ context.Context, id string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	i := slices.IndexFunc(f.snaps, func(s cow.SnapshotInfo) bool { return s.ID == id })
	if i < 0 {
		return cow.ErrSnapshotNotFound
	}
	f.snaps = slices.Delete(f.snaps, i, i+1)
	f.deleted = append(f.deleted, id)
	return nil
}

// snapsOf returns the snapshots of volume, oldest first.
func (f *fakeEngine) snapsOf(volume string) []cow.SnapshotInfo {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []cow.SnapshotInfo
	for _, s := range f.snaps {
		if s.VolumeID == volume {
			out = append(out, s)
		}
	}
	return out
}

// clock is a settable time.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time  { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) set(t time.Time) { c.mu.Lock(); c.t = t; c.mu.Unlock() }

// rig is a Manager and a Scheduler over a fake engine, with a fake clock.
type rig struct {
	dir   string
	clk   *clock
	eng   *fakeEngine
	m     *Manager
	sched *Scheduler
}

func newRig(t *testing.T, start time.Time) *rig {
	clk := &clock{t: start}
	eng := &fakeEngine{now: clk.now}
	for i, tags := range [][]cow.Tag{
		{{Key: "backup", Value: "yes"}, {Key: "team", Value: "db"}},
		{{Key: "backup", Value: "yes"}},
		{{Key: "backup", Value: "yes"}},
		{{Key: "backup", Value: "no"}},
	} {
		eng.vols = append(eng.vols, cow.VolumeInfo{ID: fmt.Sprintf("vol-%017d", i+1), State: cow.VolumeAvailable, Tags: tags})
	}
	r := &rig{dir: t.TempDir(), clk: clk, eng: eng}
	r.restart(t)
	return r
}

// restart reopens the policies from their directory, as a daemon does.
func (r *rig) restart(t *testing.T) {
	m, err := Open(r.dir, Limits{MinuteIntervals: true}, r.clk.now)
	if err != nil {
		t.Fatal(err)
	}
	r.m = m
	r.sched = NewScheduler(m, Config{Engine: r.eng, MaxJitter: 30 * time.Second, Logger: slog.New(slog.DiscardHandler)})
}

func (r *rig) tickAt(t *testing.T, at time.Time) {
	t.Helper()
	r.clk.set(at)
	if err := r.sched.Tick(context.Background()); err != nil {
		t.Fatal(err)
	}
}

// runHour ticks at hour h of 2026-01-01 and half a minute later, when
// every jitter offset (under 30s) has passed.
func (r *rig) runHour(t *testing.T, h int) {
	t.Helper()
	r.tickAt(t, time.Date(2026, 1, 1, h, 0, 0, 0, time.UTC))
	r.tickAt(t, time.Date(2026, 1, 1, h, 0, 30, 0, time.UTC))
}

func hourlyPolicy(count int) CreateParams {
	d := PolicyDetails{
		ResourceTypes: []string{ResourceTypeVolume},
		TargetTags:    []Tag{{Key: "backup", Value: "yes"}},
		Schedules: []Schedule{{Name: "hourly", CopyTags: true, TagsToAdd: []Tag{{Key: "made-by", Value: "dlm"}},
			CreateRule: &CreateRule{Interval: 1, IntervalUnit: UnitHours}, RetainRule: &RetainRule{Count: count}}},
	}
	return CreateParams{Description: "hourly", State: StateEnabled, ExecutionRoleArn: "arn:aws:iam::111122223333:role/dlm", Details: &d}
}

func TestSchedulerRunsAndRetains(t *testing.T) {
	start := at("2026-01-01T10:20:00Z")
	r := newRig(t, start)
	p, err := r.m.Create(hourlyPolicy(2))
	if err != nil {
		t.Fatal(err)
	}
	r.tickAt(t, start.Add(time.Minute))
	if n := len(r.eng.snaps); n != 0 {
		t.Fatalf("%d snapshots before the first scheduled time", n)
	}
	// 11:00 plus at most the jitter (a tenth of an hour, capped at 30s):
	// every targeted volume is served once by 11:00:30, none before 11:00.
	r.tickAt(t, at("2026-01-01T10:59:59Z"))
	if n := len(r.eng.snaps); n != 0 {
		t.Fatalf("%d snapshots before 11:00", n)
	}
	for s := 0; s <= 30; s++ {
		r.tickAt(t, at("2026-01-01T11:00:00Z").Add(time.Duration(s)*time.Second))
	}
	starts := map[time.Time]bool{}
	for _, v := range []string{"vol-00000000000000001", "vol-00000000000000002", "vol-00000000000000003"} {
		got := r.eng.snapsOf(v)
		if len(got) != 1 {
			t.Fatalf("%s: %d snapshots after the 11:00 run, want 1", v, len(got))
		}
		s := got[0]
		starts[s.StartTime] = true
		tags := tagMap(s.Tags)
		if tags[TagPolicyID] != p.ID || tags[TagScheduleName] != "hourly" || tags["made-by"] != "dlm" || tags["backup"] != "yes" {
			t.Fatalf("%s: snapshot tags %v", v, s.Tags)
		}
	}
	if len(starts) < 2 {
		t.Fatalf("every volume forked at the same instant: %v", starts)
	}
	if n := len(r.eng.snapsOf("vol-00000000000000004")); n != 0 {
		t.Fatalf("untargeted volume has %d snapshots", n)
	}
	// Three more hourly runs: retention keeps the newest two of each.
	for h := 12; h <= 14; h++ {
		r.runHour(t, h)
	}
	for _, v := range []string{"vol-00000000000000001", "vol-00000000000000002", "vol-00000000000000003"} {
		got := r.eng.snapsOf(v)
		if len(got) != 2 || got[0].StartTime.Hour() != 13 || got[1].StartTime.Hour() != 14 {
			t.Fatalf("%s: kept %v, want the 13:00 and 14:00 snapshots", v, got)
		}
	}
	if n := len(r.eng.deleted); n != 6 {
		t.Fatalf("%d deleted, want 6", n)
	}
}

func TestSchedulerMissedRunsRunOnceAfterRestart(t *testing.T) {
	start := at("2026-01-01T10:20:00Z")
	r := newRig(t, start)
	if _, err := r.m.Create(hourlyPolicy(10)); err != nil {
		t.Fatal(err)
	}
	r.runHour(t, 11)
	if n := len(r.eng.snapsOf("vol-00000000000000001")); n != 1 {
		t.Fatalf("%d snapshots after 11:00", n)
	}
	// Down from 11:30 to 16:10: five runs missed, one made on start.
	// The missed run is spread from the start (16:10) on, as a run on
	// time is from its scheduled time.
	r.restart(t)
	r.tickAt(t, at("2026-01-01T16:10:00Z"))
	r.tickAt(t, at("2026-01-01T16:10:30Z"))
	got := r.eng.snapsOf("vol-00000000000000001")
	if len(got) != 2 {
		t.Fatalf("%d snapshots after the restart, want 2 (one for the missed runs)", len(got))
	}
	// The run at 16:00 was the one served: nothing more until 17:00.
	r.tickAt(t, at("2026-01-01T16:59:00Z"))
	if n := len(r.eng.snapsOf("vol-00000000000000001")); n != 2 {
		t.Fatalf("%d snapshots before 17:00, want 2", n)
	}
	r.runHour(t, 17)
	if n := len(r.eng.snapsOf("vol-00000000000000001")); n != 3 {
		t.Fatalf("%d snapshots after 17:00, want 3", n)
	}
}

func TestSchedulerRestartMidRunServesTheRest(t *testing.T) {
	start := at("2026-01-01T10:20:00Z")
	r := newRig(t, start)
	if _, err := r.m.Create(hourlyPolicy(10)); err != nil {
		t.Fatal(err)
	}
	// Serve the 11:00 run for the volumes whose jitter has passed by
	// some second, then restart: the others are served once, the first
	// ones not again.
	var mid time.Time
	for s := 0; s <= 30; s++ {
		mid = at("2026-01-01T11:00:00Z").Add(time.Duration(s) * time.Second)
		r.tickAt(t, mid)
		if n := len(r.eng.snaps); n > 0 && n < 3 {
			break
		}
	}
	before := len(r.eng.snaps)
	if before == 0 || before == 3 {
		t.Skipf("the jitter offsets put all three volumes in one second (%d served)", before)
	}
	r.restart(t)
	r.tickAt(t, mid.Add(time.Second))
	r.tickAt(t, at("2026-01-01T11:00:31Z"))
	if n := len(r.eng.snaps); n != 3 {
		t.Fatalf("%d snapshots after the restart, want 3 (each volume once)", n)
	}
}

func TestSchedulerDisabledAndDeleted(t *testing.T) {
	start := at("2026-01-01T10:20:00Z")
	r := newRig(t, start)
	p, err := r.m.Create(hourlyPolicy(1))
	if err != nil {
		t.Fatal(err)
	}
	r.runHour(t, 11)
	r.runHour(t, 12)
	if n := len(r.eng.snaps); n != 3 {
		t.Fatalf("%d snapshots, want 3", n)
	}
	disabled := StateDisabled
	if _, err := r.m.Update(p.ID, UpdateParams{State: &disabled}); err != nil {
		t.Fatal(err)
	}
	r.runHour(t, 13)
	if n := len(r.eng.snaps); n != 3 || len(r.eng.deleted) != 3 {
		t.Fatalf("disabled policy acted: %d snapshots, %d deleted", n, len(r.eng.deleted))
	}
	// Enabled again at 13:30: the next run is at 14:00, not at once.
	r.clk.set(at("2026-01-01T13:30:00Z"))
	enabled := StateEnabled
	if _, err := r.m.Update(p.ID, UpdateParams{State: &enabled}); err != nil {
		t.Fatal(err)
	}
	r.tickAt(t, at("2026-01-01T13:31:00Z"))
	if n := len(r.eng.snaps); n != 3 {
		t.Fatalf("re-enabled policy ran at once: %d snapshots", n)
	}
	if err := r.m.Delete(p.ID); err != nil {
		t.Fatal(err)
	}
	r.runHour(t, 14)
	if n := len(r.eng.snaps); n != 3 {
		t.Fatalf("deleted policy acted: %d snapshots", n)
	}
	if _, err := r.m.Get(p.ID); err == nil {
		t.Fatal("deleted policy still found")
	}
}

func TestRetentionLeavesOtherSnapshots(t *testing.T) {
	start := at("2026-01-01T10:20:00Z")
	r := newRig(t, start)
	// A snapshot made by hand and one with another policy's tags.
	r.eng.snaps = append(r.eng.snaps,
		cow.SnapshotInfo{ID: "snap-manual000000000", VolumeID: "vol-00000000000000001", State: cow.SnapshotCompleted, StartTime: start.Add(-time.Hour)},
		cow.SnapshotInfo{ID: "snap-other0000000000", VolumeID: "vol-00000000000000001", State: cow.SnapshotCompleted, StartTime: start.Add(-time.Hour),
			Tags: []cow.Tag{{Key: TagPolicyID, Value: "policy-00000000000000000"}, {Key: TagScheduleName, Value: "hourly"}}})
	if _, err := r.m.Create(hourlyPolicy(1)); err != nil {
		t.Fatal(err)
	}
	for h := 11; h <= 13; h++ {
		r.runHour(t, h)
	}
	got := r.eng.snapsOf("vol-00000000000000001")
	var ids []string
	for _, s := range got {
		ids = append(ids, s.ID)
	}
	if len(got) != 3 || !slices.Contains(ids, "snap-manual000000000") || !slices.Contains(ids, "snap-other0000000000") {
		t.Fatalf("kept %v, want the two others and the newest of the policy", ids)
	}
}

func TestRetentionOfUntargetedAndDeletedVolumes(t *testing.T) {
	start := at("2026-01-01T10:20:00Z")
	r := newRig(t, start)
	p := hourlyPolicy(0)
	p.Details.Schedules[0].RetainRule = &RetainRule{Interval: 1, IntervalUnit: "DAYS"}
	if _, err := r.m.Create(p); err != nil {
		t.Fatal(err)
	}
	r.runHour(t, 11)
	r.runHour(t, 12)
	// vol 2 loses its target tag; vol 3 is deleted.
	r.eng.mu.Lock()
	r.eng.vols[1].Tags = []cow.Tag{{Key: "backup", Value: "no"}}
	r.eng.vols = slices.Delete(r.eng.vols, 2, 3)
	r.eng.mu.Unlock()
	// Two days on: the day-old snapshots expire.
	r.tickAt(t, at("2026-01-03T12:30:00Z"))
	r.tickAt(t, at("2026-01-03T12:31:00Z"))
	for _, tc := range []struct {
		vol  string
		want int
	}{
		{"vol-00000000000000001", 1}, // targeted: the new run's only
		{"vol-00000000000000002", 2}, // no longer targeted: all kept
		{"vol-00000000000000003", 1}, // deleted: its last kept
	} {
		if got := r.eng.snapsOf(tc.vol); len(got) != tc.want {
			t.Errorf("%s: %d snapshots, want %d", tc.vol, len(got), tc.want)
		}
	}
	if got := r.eng.snapsOf("vol-00000000000000003"); len(got) == 1 && got[0].StartTime.Hour() != 12 {
		t.Errorf("deleted volume kept %v, want its newest (12:00)", got[0].StartTime)
	}
}

func TestUpdateRestartsChangedSchedules(t *testing.T) {
	start := at("2026-01-01T10:20:00Z")
	r := newRig(t, start)
	p, err := r.m.Create(hourlyPolicy(10))
	if err != nil {
		t.Fatal(err)
	}
	r.runHour(t, 11)
	key := runKey(p.ID, "hourly")
	if rs := r.m.st.Runs[key]; rs == nil || rs.Baseline {
		t.Fatalf("progress after a run: %+v", rs)
	}
	// A new description keeps the progress; a new CreateRule restarts it.
	desc := "renamed"
	if _, err := r.m.Update(p.ID, UpdateParams{Description: &desc}); err != nil {
		t.Fatal(err)
	}
	if rs := r.m.st.Runs[key]; rs == nil || !rs.Instant.Equal(at("2026-01-01T11:00:00Z")) {
		t.Fatalf("progress after a description change: %+v", rs)
	}
	d := p.Details
	d.Schedules[0].CreateRule = &CreateRule{Interval: 2, IntervalUnit: UnitHours}
	r.clk.set(at("2026-01-01T11:30:00Z"))
	if _, err := r.m.Update(p.ID, UpdateParams{Details: &d}); err != nil {
		t.Fatal(err)
	}
	if rs := r.m.st.Runs[key]; rs != nil {
		t.Fatalf("progress kept across a new CreateRule: %+v", rs)
	}
	r.runHour(t, 12)
	r.runHour(t, 13) // every 2 hours from 00:00: none at 13:00
	if n := len(r.eng.snapsOf("vol-00000000000000001")); n != 2 {
		t.Fatalf("%d snapshots, want 2 (11:00, then 12:00 under the new rule)", n)
	}
	r.runHour(t, 14)
	if n := len(r.eng.snapsOf("vol-00000000000000001")); n != 3 {
		t.Fatalf("%d snapshots, want 3 (and 14:00)", n)
	}
}

// TestCountRetentionAtCreation: as DLM's, a retention by count is enforced
// when the schedule creates a snapshot, so a snapshot restored from the
// Recycle Bin (its policy tags kept) stays until the next run, and goes
// then with the others beyond the count.
func TestCountRetentionAtCreation(t *testing.T) {
	start := at("2026-01-01T10:20:00Z")
	r := newRig(t, start)
	if _, err := r.m.Create(hourlyPolicy(1)); err != nil {
		t.Fatal(err)
	}
	r.runHour(t, 11)
	r.runHour(t, 12)
	const vol = "vol-00000000000000001"
	got := r.eng.snapsOf(vol)
	if len(got) != 1 || got[0].StartTime.Hour() != 12 {
		t.Fatalf("kept %v, want the 12:00 snapshot", got)
	}
	// The 11:00 snapshot comes back, as RestoreSnapshotFromRecycleBin
	// brings it: same ID, same tags.
	r.eng.mu.Lock()
	var restored cow.SnapshotInfo
	for _, s := range r.eng.snaps {
		if s.VolumeID == vol {
			restored = s
		}
	}
	restored.ID = r.eng.deleted[0]
	restored.StartTime = at("2026-01-01T11:00:10Z")
	r.eng.snaps = append(r.eng.snaps, restored)
	r.eng.mu.Unlock()
	for m := 10; m <= 50; m += 20 {
		r.tickAt(t, time.Date(2026, 1, 1, 12, m, 0, 0, time.UTC))
	}
	if got := r.eng.snapsOf(vol); len(got) != 2 {
		t.Fatalf("between runs the restored snapshot was deleted again: %v", got)
	}
	r.runHour(t, 13)
	if got := r.eng.snapsOf(vol); len(got) != 1 || got[0].StartTime.Hour() != 13 {
		t.Fatalf("after the 13:00 run: %v, want only it", got)
	}
}
