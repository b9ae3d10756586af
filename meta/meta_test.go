package meta

import (
	"bytes"
	"testing"
	"time"
)

func TestExtentCodec(t *testing.T) {
	for _, e := range []Extent{
		{},
		{Slot: 1, Gen: 1},
		{Slot: 1<<64 - 1, Gen: 1<<64 - 1, Flags: ExtentZero},
	} {
		got, err := DecodeExtent(EncodeExtent(e))
		if err != nil || got != e {
			t.Fatalf("round trip of %+v = %+v, %v", e, got, err)
		}
	}
	for _, bad := range [][]byte{nil, {1}, make([]byte, extentLen+1), append([]byte{9}, make([]byte, extentLen-1)...)} {
		if _, err := DecodeExtent(bad); err == nil {
			t.Fatalf("DecodeExtent(%x) accepted garbage", bad)
		}
	}
}

func TestKeysSortByBlockAndGeneration(t *testing.T) {
	const vol = "vol-0123456789abcdef0"
	tests := []struct {
		name   string
		lo, hi []byte
	}{
		{"live by block", LiveKey(vol, 255), LiveKey(vol, 256)},
		{"change by generation first", ChangeKey(vol, 1, 1<<40), ChangeKey(vol, 2, 0)},
		{"change by block within a generation", ChangeKey(vol, 7, 1), ChangeKey(vol, 7, 2)},
	}
	for _, tt := range tests {
		if bytes.Compare(tt.lo, tt.hi) >= 0 {
			t.Errorf("%s: %x does not sort before %x", tt.name, tt.lo, tt.hi)
		}
	}
	blk, err := ParseLiveKey(vol, LiveKey(vol, 42))
	if err != nil || blk != 42 {
		t.Fatalf("ParseLiveKey = %d, %v", blk, err)
	}
	gen, blk, err := ParseChangeKey(vol, ChangeKey(vol, 3, 9))
	if err != nil || gen != 3 || blk != 9 {
		t.Fatalf("ParseChangeKey = %d, %d, %v", gen, blk, err)
	}
	if _, err := ParseLiveKey(vol, LiveKey("vol-11111111111111111", 1)); err == nil {
		t.Fatal("ParseLiveKey accepted another volume's key")
	}
}

func TestStoreVolumesAndExtents(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(Options{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	r := VolumeRecord{ID: "vol-0123456789abcdef0", Size: 1 << 30, BlockSize: 65536, Generation: 1,
		CreateTime: time.Now().UTC().Truncate(time.Millisecond), Tags: []Tag{{"k", "v"}}, ClientToken: "tok"}
	if err := s.CreateVolume(r); err != nil {
		t.Fatal(err)
	}
	var b Batch
	b.PutLive(r.ID, 7, Extent{Slot: 3, Gen: 1})
	b.PutChange(r.ID, 7, Extent{Slot: 3, Gen: 1})
	b.PutLive(r.ID, 8, Extent{Gen: 1, Flags: ExtentZero})
	b.PutLive(r.ID, 9, Extent{Slot: 4, Gen: 1})
	b.DeleteLive(r.ID, 9)
	if err := s.Apply(&b); err != nil {
		t.Fatal(err)
	}
	if err := s.Sync(); err != nil {
		t.Fatal(err)
	}
	s.Close()

	// Everything is there after reopening.
	s, err = Open(Options{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	vols, err := s.Volumes()
	if err != nil || len(vols) != 1 || vols[0].ID != r.ID || !vols[0].CreateTime.Equal(r.CreateTime) || len(vols[0].Tags) != 1 {
		t.Fatalf("Volumes() = %+v, %v", vols, err)
	}
	if id, err := s.VolumeByClientToken("tok"); err != nil || id != r.ID {
		t.Fatalf("VolumeByClientToken = %q, %v", id, err)
	}
	live := map[uint64]Extent{}
	s.LiveExtents(r.ID, func(blk uint64, e Extent) error { live[blk] = e; return nil })
	if len(live) != 2 || live[7].Slot != 3 || !live[8].Zero() {
		t.Fatalf("live map = %+v", live)
	}
	n := 0
	s.ChangeExtents(r.ID, func(gen, blk uint64, e Extent) error { n++; return nil })
	if n != 1 {
		t.Fatalf("%d change records, want 1", n)
	}
	if err := s.DeleteVolume(vols[0]); err != nil {
		t.Fatal(err)
	}
	vols, _ = s.Volumes()
	live = map[uint64]Extent{}
	s.LiveExtents(r.ID, func(blk uint64, e Extent) error { live[blk] = e; return nil })
	if _, err := s.VolumeByClientToken("tok"); err != ErrNotFound || len(vols) != 0 || len(live) != 0 {
		t.Fatalf("after DeleteVolume: volumes %v, live %v, token err %v", vols, live, err)
	}
}
