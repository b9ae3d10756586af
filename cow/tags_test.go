package cow

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/cowvol/cowvol/meta"
)

func TestValidateTags(t *testing.T) {
	many := make([]Tag, MaxTags+1)
	for i := range many {
		many[i] = Tag{Key: fmt.Sprintf("k%d", i)}
	}
	for _, tc := range []struct {
		name string
		tags []Tag
		want error
	}{
		{"none", nil, nil},
		{"longest key and value", []Tag{{Key: strings.Repeat("k", 128), Value: strings.Repeat("v", 256)}}, nil},
		{"longest key in runes", []Tag{{Key: strings.Repeat("é", 128)}}, nil},
		{"key too long", []Tag{{Key: strings.Repeat("k", 129)}}, ErrInvalidParameter},
		{"value too long", []Tag{{Key: "k", Value: strings.Repeat("é", 257)}}, ErrInvalidParameter},
		{"empty key", []Tag{{Key: ""}}, ErrInvalidParameter},
		{"aws: prefix", []Tag{{Key: "aws:x"}}, ErrInvalidParameter},
		{"AWS: prefix", []Tag{{Key: "AwS:x"}}, ErrInvalidParameter},
		{"duplicate", []Tag{{Key: "a"}, {Key: "a"}}, ErrInvalidParameter},
		{"50 tags", many[:50], nil},
		{"51 tags", many, ErrTagLimitExceeded},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := ValidateTags(tc.tags); !errors.Is(err, tc.want) || (tc.want == nil) != (err == nil) {
				t.Fatalf("ValidateTags = %v, want %v", err, tc.want)
			}
		})
	}
}

func TestTagChangeApply(t *testing.T) {
	v1, empty := "1", ""
	base := []Tag{{"a", "1"}, {"b", "2"}, {"c", ""}}
	for _, tc := range []struct {
		name string
		c    TagChange
		want []Tag
	}{
		{"set new and replace", TagChange{Set: []Tag{{"b", "x"}, {"d", "4"}}}, []Tag{{"a", "1"}, {"b", "x"}, {"c", ""}, {"d", "4"}}},
		{"delete by key", TagChange{Delete: []TagRef{{Key: "a"}}}, []Tag{{"b", "2"}, {"c", ""}}},
		{"delete by key and value", TagChange{Delete: []TagRef{{Key: "a", Value: &v1}, {Key: "b", Value: &v1}}}, []Tag{{"b", "2"}, {"c", ""}}},
		{"delete by empty value", TagChange{Delete: []TagRef{{Key: "c", Value: &empty}, {Key: "a", Value: &empty}}}, []Tag{{"a", "1"}, {"b", "2"}}},
		{"delete all", TagChange{DeleteAll: true}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := tc.c.apply(base); !slices.Equal(got, tc.want) {
				t.Fatalf("apply = %v, want %v", got, tc.want)
			}
		})
	}
}

// TestChangeTags: tags of volumes and snapshots (pending and completed)
// change together, survive a restart, and bad calls change nothing.
func TestChangeTags(t *testing.T) {
	dir := t.TempDir()
	eng := openTestEngine(t, dir)
	vi, err := eng.CreateVolume(ctx, CreateVolumeParams{Size: 1 << 20, Tags: []Tag{{"Name", "db"}}})
	if err != nil {
		t.Fatal(err)
	}
	si, err := eng.CreateSnapshot(ctx, CreateSnapshotParams{VolumeID: vi.ID, Tags: []Tag{{"k", "v"}}})
	if err != nil {
		t.Fatal(err)
	}
	ids := []string{vi.ID, si.ID}
	if err := eng.ChangeTags(ctx, TagChange{ResourceIDs: ids, Set: []Tag{{"env", "prod"}}}); err != nil {
		t.Fatal(err)
	}
	waitSnapshot(t, eng, si.ID)
	check := func(eng *Engine, wantVol, wantSnap []Tag) {
		t.Helper()
		gv, _ := eng.VolumeInfo(vi.ID)
		gs, _ := eng.SnapshotInfo(si.ID)
		if !slices.Equal(gv.Tags, wantVol) || !slices.Equal(gs.Tags, wantSnap) {
			t.Fatalf("tags: volume %v, snapshot %v; want %v and %v", gv.Tags, gs.Tags, wantVol, wantSnap)
		}
	}
	check(eng, []Tag{{"Name", "db"}, {"env", "prod"}}, []Tag{{"k", "v"}, {"env", "prod"}})

	// Bad calls: nothing changes.
	fifty := make([]Tag, 49)
	for i := range fifty {
		fifty[i] = Tag{Key: fmt.Sprintf("t%d", i)}
	}
	for _, tc := range []struct {
		name string
		c    TagChange
		want error
		id   string
	}{
		{"unknown volume", TagChange{ResourceIDs: []string{vi.ID, "vol-0123456789abcdef0"}, Set: []Tag{{"x", ""}}}, ErrVolumeNotFound, "vol-0123456789abcdef0"},
		{"unknown snapshot", TagChange{ResourceIDs: []string{vi.ID, "snap-0123456789abcdef0"}, Set: []Tag{{"x", ""}}}, ErrSnapshotNotFound, "snap-0123456789abcdef0"},
		{"not a resource", TagChange{ResourceIDs: []string{vi.ID, "i-0123456789abcdef0"}, Set: []Tag{{"x", ""}}}, ErrInvalidResourceID, "i-0123456789abcdef0"},
		{"51 tags on the volume", TagChange{ResourceIDs: ids, Set: fifty}, ErrTagLimitExceeded, vi.ID},
		{"aws: key", TagChange{ResourceIDs: ids, Set: []Tag{{"aws:x", ""}}}, ErrInvalidParameter, ""},
		{"delete an aws: key", TagChange{ResourceIDs: ids, Delete: []TagRef{{Key: "aws:x"}}}, ErrInvalidParameter, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := eng.ChangeTags(ctx, tc.c)
			var re *ResourceError
			if !errors.Is(err, tc.want) || (tc.id != "" && (!errors.As(err, &re) || re.ID != tc.id)) {
				t.Fatalf("ChangeTags = %v, want %v on %q", err, tc.want, tc.id)
			}
			check(eng, []Tag{{"Name", "db"}, {"env", "prod"}}, []Tag{{"k", "v"}, {"env", "prod"}})
		})
	}
	// A dry run changes nothing either.
	if err := eng.ChangeTags(ctx, TagChange{ResourceIDs: ids, DeleteAll: true, DryRun: true}); err != nil {
		t.Fatal(err)
	}
	if err := eng.ChangeTags(ctx, TagChange{ResourceIDs: ids, Delete: []TagRef{{Key: "k"}, {Key: "Name"}}}); err != nil {
		t.Fatal(err)
	}
	check(eng, []Tag{{"env", "prod"}}, []Tag{{"env", "prod"}})
	eng.Close()
	eng = openTestEngine(t, dir)
	check(eng, []Tag{{"env", "prod"}}, []Tag{{"env", "prod"}})
	if err := eng.DeleteSnapshot(ctx, si.ID); err != nil {
		t.Fatal(err)
	}
	if all, _ := eng.meta.AllSnapshotAttributes(); len(all) != 0 {
		t.Fatalf("attributes left after DeleteSnapshot: %v", all)
	}
}

// TestSharedSnapshotAttributes: tags and permissions A gives its snapshot
// are seen by B on the same store; B may create a volume only once
// permitted, and may not change A's tags or permissions.
func TestSharedSnapshotAttributes(t *testing.T) {
	st := sharedDir(t)
	a := openSharedEngine(t, st, "111111111111", time.Hour)
	b := openSharedEngine(t, st, "222222222222", time.Hour)
	c := openSharedEngine(t, st, "333333333333", time.Hour)
	vi, _ := a.CreateVolume(ctx, CreateVolumeParams{Size: 1 << 20})
	snap, _ := a.CreateSnapshot(ctx, CreateSnapshotParams{VolumeID: vi.ID, Tags: []Tag{{"k", "created"}}})
	waitSnapshot(t, a, snap.ID)
	if err := a.ChangeTags(ctx, TagChange{ResourceIDs: []string{snap.ID}, Set: []Tag{{"k", "changed"}}}); err != nil {
		t.Fatal(err)
	}
	if err := a.ModifySnapshotPermission(ctx, PermissionChange{SnapshotID: snap.ID, AddUsers: []string{"222222222222"}}); err != nil {
		t.Fatal(err)
	}
	// B's catalogue may have read the snapshot before: it sees the
	// change at its next refresh. CreateVolume asks the store at once.
	waitFor(t, "B sees the new tags and permissions", func() bool {
		si, err := b.SnapshotInfo(snap.ID)
		return err == nil && slices.Equal(si.Tags, []Tag{{"k", "changed"}}) && slices.Equal(si.CreateVolumeUsers, []string{"222222222222"})
	})
	if _, err := b.CreateVolume(ctx, CreateVolumeParams{SnapshotID: snap.ID}); err != nil {
		t.Fatalf("B, permitted: %v", err)
	}
	if _, err := c.CreateVolume(ctx, CreateVolumeParams{SnapshotID: snap.ID}); !errors.Is(err, ErrNoCreateVolumePermission) {
		t.Fatalf("C, not permitted: %v", err)
	}
	if err := b.ChangeTags(ctx, TagChange{ResourceIDs: []string{snap.ID}, Set: []Tag{{"x", ""}}}); !errors.Is(err, ErrNotOwner) {
		t.Fatalf("B tagging A's snapshot: %v", err)
	}
	if err := b.ModifySnapshotPermission(ctx, PermissionChange{SnapshotID: snap.ID, AddAll: true}); !errors.Is(err, ErrNotOwner) {
		t.Fatalf("B sharing A's snapshot: %v", err)
	}
	// Everyone, then a later change seen by a catalogue refresh.
	if err := a.ModifySnapshotPermission(ctx, PermissionChange{SnapshotID: snap.ID, AddAll: true, RemoveUsers: []string{"222222222222"}}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.CreateVolume(ctx, CreateVolumeParams{SnapshotID: snap.ID}); err != nil {
		t.Fatalf("C, group all: %v", err)
	}
	if err := a.ChangeTags(ctx, TagChange{ResourceIDs: []string{snap.ID}, DeleteAll: true}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "B sees the tags deleted and the snapshot public", func() bool {
		si, _ := b.SnapshotInfo(snap.ID)
		return len(si.Tags) == 0 && si.CreateVolumeAll && len(si.CreateVolumeUsers) == 0
	})
}

// waitFor polls cond (a catalogue refreshes every 50 ms here) for 10 s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out: %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func FuzzDecodeAttributes(f *testing.F) {
	const id = "snap-0123456789abcdef0"
	good, _ := encodeAttributes(id, attributesOf([]Tag{{"k", "v"}}, []string{"123456789012"}, true))
	f.Add(good)
	f.Add([]byte(`{"version":1,"snapshotId":"snap-0123456789abcdef0","tags":[{"Key":"aws:x"}]}`))
	f.Add([]byte(`{"version":2}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		a, err := decodeAttributes(b, id)
		if err != nil {
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("error %v does not wrap ErrCorrupt", err)
			}
			return
		}
		again, err := encodeAttributes(id, a)
		if err != nil {
			t.Fatal(err)
		}
		if back, err := decodeAttributes(again, id); err != nil || !attributesEqual(back, a) {
			t.Fatalf("round trip: %+v, %v; want %+v", back, err, a)
		}
	})
}

// attributesOf builds snapshot attributes.
func attributesOf(tags []Tag, users []string, all bool) meta.SnapshotAttributes {
	return meta.SnapshotAttributes{Tags: tagsToMeta(tags), CreateVolumeUsers: users, CreateVolumeAll: all}
}
