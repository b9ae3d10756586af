package meta

import (
	"reflect"
	"testing"
	"time"
)

// FuzzDecodeVolume: a volume record, whatever its bytes, decodes without
// panicking, and one that decodes encodes back to a record that decodes
// the same (the modification and attachment included).
func FuzzDecodeVolume(f *testing.F) {
	start := time.Date(2026, 12, 2, 10, 0, 0, 0, time.UTC)
	seed, err := encodeVolume(VolumeRecord{ID: "vol-0123456789abcdef0", Size: 2 << 30, BlockSize: 65536, Generation: 3,
		CreateTime: start,
		Modification: &VolumeModification{State: "completed", Progress: 100, StartTime: start, EndTime: start.Add(time.Second),
			OriginalSize: 1 << 30, TargetSize: 2 << 30},
		Attachment: &VolumeAttachment{Device: "/dev/loop3", AttachTime: start}})
	if err != nil {
		f.Fatal(err)
	}
	f.Add(seed)
	f.Add([]byte(`{"id":"vol-1","modification":{"state":"modifying"},"attachment":null}`))
	f.Add([]byte(`{"modification":{"end":"not a time"}}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := decodeVolume(b)
		if err != nil {
			return
		}
		again, err := encodeVolume(r)
		if err != nil {
			t.Fatalf("a decoded record does not encode: %v", err)
		}
		r2, err := decodeVolume(again)
		if err != nil {
			t.Fatalf("a re-encoded record does not decode: %v", err)
		}
		if !reflect.DeepEqual(normalize(r), normalize(r2)) {
			t.Fatalf("round trip changed the record:\n%+v\n%+v", r, r2)
		}
	})
}

// normalize drops what JSON does not keep exactly (monotonic clock
// readings, locations), for comparison.
func normalize(r VolumeRecord) VolumeRecord {
	r.CreateTime = r.CreateTime.UTC()
	if m := r.Modification; m != nil {
		c := *m
		c.StartTime, c.EndTime = c.StartTime.UTC(), c.EndTime.UTC()
		r.Modification = &c
	}
	if a := r.Attachment; a != nil {
		c := *a
		c.AttachTime = c.AttachTime.UTC()
		r.Attachment = &c
	}
	return r
}
