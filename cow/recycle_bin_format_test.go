package cow

import (
	"errors"
	"testing"
	"time"
)

func TestRecycledRecordRoundTrip(t *testing.T) {
	enter := time.Date(2026, 12, 2, 10, 0, 0, 0, time.UTC)
	r := recycledRecord{SnapshotID: "snap-0123456789abcdef0", OwnerID: "111111111111", VolumeID: "vol-0123456789abcdef0",
		Description: "d", RuleID: "abcdefghijk", EnterTime: enter, ExitTime: enter.Add(24 * time.Hour)}
	b, err := encodeRecycled(r)
	if err != nil {
		t.Fatal(err)
	}
	got, err := decodeRecycled(b, r.SnapshotID)
	r.Version = recycledFormat
	if err != nil || !got.EnterTime.Equal(r.EnterTime) || !got.ExitTime.Equal(r.ExitTime) || got.RuleID != r.RuleID ||
		got.OwnerID != r.OwnerID || got.VolumeID != r.VolumeID || got.Description != r.Description {
		t.Fatalf("decode(encode(%+v)) = %+v, %v", r, got, err)
	}
	if _, err := decodeRecycled(b, "snap-0000000000000000f"); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("a record under another snapshot's key: %v, want ErrCorrupt", err)
	}
}

func TestDecodeRecycledRefuses(t *testing.T) {
	const id = "snap-0123456789abcdef0"
	for _, tc := range []struct{ name, json string }{
		{"not JSON", `{`},
		{"no version", `{"snapshotId":"` + id + `","ownerId":"1","enterTime":"2026-01-01T00:00:00Z","exitTime":"2026-01-02T00:00:00Z"}`},
		{"future version", `{"version":2,"snapshotId":"` + id + `","ownerId":"1","enterTime":"2026-01-01T00:00:00Z","exitTime":"2026-01-02T00:00:00Z"}`},
		{"no times", `{"version":1,"snapshotId":"` + id + `","ownerId":"1"}`},
		{"exit before entry", `{"version":1,"snapshotId":"` + id + `","ownerId":"1","enterTime":"2026-01-02T00:00:00Z","exitTime":"2026-01-01T00:00:00Z"}`},
		{"no owner", `{"version":1,"snapshotId":"` + id + `","enterTime":"2026-01-01T00:00:00Z","exitTime":"2026-01-02T00:00:00Z"}`},
		{"bad time", `{"version":1,"snapshotId":"` + id + `","ownerId":"1","enterTime":"yesterday","exitTime":"2026-01-02T00:00:00Z"}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := decodeRecycled([]byte(tc.json), id); !errors.Is(err, ErrCorrupt) {
				t.Fatalf("decodeRecycled = %v, want ErrCorrupt", err)
			}
		})
	}
}

func TestRecycledExpiry(t *testing.T) {
	enter := time.Date(2026, 12, 2, 10, 0, 0, 0, time.UTC)
	r := recycledRecord{EnterTime: enter, ExitTime: enter.Add(time.Hour)}
	for _, tc := range []struct {
		at   time.Time
		want bool
	}{
		{enter, false},
		{enter.Add(time.Hour - time.Nanosecond), false},
		{enter.Add(time.Hour), true},
		{enter.Add(48 * time.Hour), true},
	} {
		if got := r.expired(tc.at); got != tc.want {
			t.Errorf("expired at %v = %v, want %v", tc.at, got, tc.want)
		}
	}
}

func TestRecycleKeys(t *testing.T) {
	const id = "snap-0123456789abcdef0"
	if got, ok := parseRecycleRecordKey(recycleRecordKey(id)); !ok || got != id {
		t.Fatalf("parse(%q) = %q, %v", recycleRecordKey(id), got, ok)
	}
	for _, k := range []string{"snapshots/" + id + "/manifest", "snapshots//recycle-bin", "snapshots/a/b/recycle-bin", "holds/recycle-bin/" + id} {
		if _, ok := parseRecycleRecordKey(k); ok {
			t.Errorf("parseRecycleRecordKey(%q) accepted", k)
		}
	}
}

// FuzzDecodeRecycled: the decoder of a stored recycle-bin record never
// panics, and what it accepts is self-consistent and encodes back to a
// record it accepts again.
func FuzzDecodeRecycled(f *testing.F) {
	const id = "snap-0123456789abcdef0"
	enter := time.Date(2026, 12, 2, 10, 0, 0, 0, time.UTC)
	good, _ := encodeRecycled(recycledRecord{SnapshotID: id, OwnerID: "1", RuleID: "r", EnterTime: enter, ExitTime: enter.Add(time.Hour)})
	f.Add(good)
	f.Add([]byte(`{"version":1}`))
	f.Add([]byte(`null`))
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := decodeRecycled(b, id)
		if err != nil {
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("error %v does not wrap ErrCorrupt", err)
			}
			return
		}
		if r.SnapshotID != id || r.ExitTime.Before(r.EnterTime) || r.OwnerID == "" {
			t.Fatalf("accepted an inconsistent record %+v", r)
		}
		again, err := encodeRecycled(r)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := decodeRecycled(again, id); err != nil {
			t.Fatalf("re-encoded record refused: %v", err)
		}
	})
}
