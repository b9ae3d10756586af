package cow

import (
	"encoding/binary"
	"errors"
	"slices"
	"sync"
	"testing"
)

// TestCreateSnapshotsConsistent: a writer writes an increasing counter to
// volume A, then the same to volume B; every pair of snapshots
// CreateSnapshots takes meanwhile restores to counters that agree as the
// writer's order allows: B's is A's, or one less.
func TestCreateSnapshotsConsistent(t *testing.T) {
	eng := openTestEngine(t, t.TempDir())
	const size = 1 << 20
	va, _ := eng.CreateVolume(ctx, CreateVolumeParams{Size: size, Tags: []Tag{{"Name", "a"}}})
	vb, _ := eng.CreateVolume(ctx, CreateVolumeParams{Size: size, Tags: []Tag{{"Name", "b"}}})
	ha, hb := openHandle(t, eng, va.ID), openHandle(t, eng, vb.ID)
	defer ha.Close()
	defer hb.Close()

	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		buf := make([]byte, 4096)
		for i := uint64(1); ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			binary.BigEndian.PutUint64(buf, i)
			if _, err := ha.WriteAt(buf, 0); err != nil {
				t.Error(err)
				return
			}
			if _, err := hb.WriteAt(buf, 0); err != nil {
				t.Error(err)
				return
			}
		}
	}()
	var pairs [][]SnapshotInfo
	for range 8 {
		snaps, err := eng.CreateSnapshots(ctx, CreateSnapshotsParams{VolumeIDs: []string{va.ID, vb.ID}, Description: "pair",
			Tags: []Tag{{"set", "x"}}, CopyTagsFromSource: true})
		if err != nil {
			t.Fatal(err)
		}
		pairs = append(pairs, snaps)
		for _, s := range snaps {
			waitSnapshot(t, eng, s.ID) // at most MaxPendingSnapshots each
		}
	}
	close(stop)
	wg.Wait()
	counter := func(snapID string) uint64 {
		rv, err := eng.CreateVolume(ctx, CreateVolumeParams{SnapshotID: snapID})
		if err != nil {
			t.Fatal(err)
		}
		return binary.BigEndian.Uint64(readVolume(t, eng, rv.ID, 8))
	}
	for i, pair := range pairs {
		if pair[0].VolumeID != va.ID || pair[1].VolumeID != vb.ID || pair[0].StartTime != pair[1].StartTime {
			t.Fatalf("pair %d: %+v", i, pair)
		}
		if !slices.Equal(pair[0].Tags, []Tag{{"set", "x"}, {"Name", "a"}}) || !slices.Equal(pair[1].Tags, []Tag{{"set", "x"}, {"Name", "b"}}) {
			t.Fatalf("pair %d tags: %v, %v", i, pair[0].Tags, pair[1].Tags)
		}
		a, b := counter(pair[0].ID), counter(pair[1].ID)
		if b != a && b+1 != a {
			t.Errorf("pair %d: A's counter %d, B's %d: not one fork point", i, a, b)
		}
	}
}

// TestCreateSnapshotsRefusals: a missing volume, a volume named twice, too
// many tags, too many pending snapshots or a dry run create nothing.
func TestCreateSnapshotsRefusals(t *testing.T) {
	eng := openTestEngine(t, t.TempDir())
	eng.StopBackground() // snapshots stay pending
	va, _ := eng.CreateVolume(ctx, CreateVolumeParams{Size: 1 << 20})
	vb, _ := eng.CreateVolume(ctx, CreateVolumeParams{Size: 1 << 20})
	for range MaxPendingSnapshots {
		if _, err := eng.CreateSnapshot(ctx, CreateSnapshotParams{VolumeID: vb.ID}); err != nil {
			t.Fatal(err)
		}
	}
	fifty := make([]Tag, 51)
	for i := range fifty {
		fifty[i] = Tag{Key: string(rune('A' + i))}
	}
	for _, tc := range []struct {
		name string
		p    CreateSnapshotsParams
		want error
		id   string
	}{
		{"missing volume", CreateSnapshotsParams{VolumeIDs: []string{va.ID, "vol-0123456789abcdef0"}}, ErrVolumeNotFound, "vol-0123456789abcdef0"},
		{"named twice", CreateSnapshotsParams{VolumeIDs: []string{va.ID, va.ID}}, ErrInvalidParameter, ""},
		{"no volumes", CreateSnapshotsParams{}, ErrInvalidParameter, ""},
		{"51 tags", CreateSnapshotsParams{VolumeIDs: []string{va.ID}, Tags: fifty}, ErrTagLimitExceeded, ""},
		{"pending limit", CreateSnapshotsParams{VolumeIDs: []string{va.ID, vb.ID}}, ErrConcurrentSnapshotLimit, vb.ID},
		{"dry run", CreateSnapshotsParams{VolumeIDs: []string{va.ID}, DryRun: true}, nil, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := eng.CreateSnapshots(ctx, tc.p)
			var re *ResourceError
			if !errors.Is(err, tc.want) || (tc.want == nil) != (err == nil) || tc.id != "" && (!errors.As(err, &re) || re.ID != tc.id) {
				t.Fatalf("CreateSnapshots = %v, want %v on %q", err, tc.want, tc.id)
			}
			all, _ := eng.DescribeSnapshots(ctx)
			if len(all) != MaxPendingSnapshots {
				t.Fatalf("%d snapshots after a refused call, want %d", len(all), MaxPendingSnapshots)
			}
		})
	}
}
