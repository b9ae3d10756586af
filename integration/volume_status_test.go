package integration

import (
	"bytes"
	"errors"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
	"unsafe"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsec2 "github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"
)

// volumeStatus is an item of describe-volume-status as the CLI prints it.
type volumeStatus struct {
	VolumeId         string
	AvailabilityZone string
	VolumeStatus     struct {
		Status  string
		Details []struct{ Name, Status string }
	}
	Events []struct {
		EventId, EventType, Description, NotBefore string
	}
	Actions []struct{ Code string }
}

// describeVolumeStatus runs `describe-volume-status --volume-ids id`.
func (d *daemon) describeVolumeStatus(t testing.TB, id string) volumeStatus {
	t.Helper()
	var out struct{ VolumeStatuses []volumeStatus }
	d.mustJSON(t, d.mustCLI(t, "describe-volume-status", "--volume-ids", id), &out)
	if len(out.VolumeStatuses) != 1 || out.VolumeStatuses[0].VolumeId != id {
		t.Fatalf("describe-volume-status --volume-ids %s printed %+v", id, out.VolumeStatuses)
	}
	return out.VolumeStatuses[0]
}

// alignedBlock is a buffer of n bytes aligned for O_DIRECT.
func alignedBlock(n int) []byte {
	b := make([]byte, n+4096)
	off := (4096 - int(uintptr(unsafe.Pointer(&b[0]))&4095)) & 4095
	return b[off : off+n]
}

// TestImpairedRestore: a snapshot whose pack in the data dir's store has a
// byte flipped in the middle (inside one of its chunks: the blocks are
// random, the pack's index is small). The volume restored from it reads
// every other block right and fails the damaged one with EIO;
// describe-volumes says available, describe-volume-status says impaired,
// naming the snapshot and the pack, and the AWS SDK parses that answer; the
// daemon logs it once. A whole-block write over the bad block makes the
// volume ok.
func TestImpairedRestore(t *testing.T) {
	d := startDaemon(t)
	const block = 64 << 10
	src := d.createVolume(t, "64MiB")
	data := make([]byte, 4*block)
	rand.NewChaCha8([32]byte{42}).Read(data)
	f, err := os.OpenFile(d.volumePath(src.VolumeId), os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt(data, 0); err != nil {
		t.Fatal(err)
	}
	if err := errors.Join(f.Sync(), f.Close()); err != nil {
		t.Fatal(err)
	}
	snap := d.createSnapshot(t, src.VolumeId)
	d.waitSnapshotCompleted(t, snap.SnapshotId)

	store := filepath.Join(d.DataDir, "snapshots")
	var packs []string
	filepath.WalkDir(filepath.Join(store, "packs"), func(p string, de fs.DirEntry, err error) error {
		if err == nil && !de.IsDir() {
			packs = append(packs, p)
		}
		return err
	})
	if len(packs) != 1 {
		t.Fatalf("packs in %s: %v, want one", store, packs)
	}
	b, err := os.ReadFile(packs[0])
	if err != nil {
		t.Fatal(err)
	}
	b[len(b)/2] ^= 0xff
	if err := os.WriteFile(packs[0], b, 0o600); err != nil {
		t.Fatal(err)
	}
	rel, _ := filepath.Rel(store, packs[0])
	pack := filepath.ToSlash(rel)

	var restored volume
	d.mustJSON(t, d.mustCLI(t, "create-volume", "--snapshot-id", snap.SnapshotId), &restored)
	id := restored.VolumeId
	var vs volumeStatus
	for deadline := time.Now().Add(time.Minute); ; time.Sleep(50 * time.Millisecond) {
		if vs = d.describeVolumeStatus(t, id); vs.VolumeStatus.Status == "impaired" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("describe-volume-status: %+v after a minute, want impaired", vs)
		}
	}
	if len(vs.Events) != 1 || vs.Events[0].EventType != "potential-data-inconsistency" ||
		!strings.Contains(vs.Events[0].Description, snap.SnapshotId) || !strings.Contains(vs.Events[0].Description, pack) ||
		!strings.HasPrefix(vs.Events[0].EventId, "evol-") || vs.Events[0].NotBefore == "" || len(vs.Actions) != 0 {
		t.Errorf("events %+v, actions %+v; want one potential-data-inconsistency naming %s and %s", vs.Events, vs.Actions, snap.SnapshotId, pack)
	}
	if len(vs.VolumeStatus.Details) != 2 || vs.VolumeStatus.Details[0] != (struct{ Name, Status string }{"io-enabled", "failed"}) {
		t.Errorf("details %+v, want io-enabled failed", vs.VolumeStatus.Details)
	}
	if st := d.describeVolume(t, id).State; st != "available" {
		t.Errorf("describe-volumes says %s, want available", st)
	}

	out, err := sdkClient(d).DescribeVolumeStatus(sdkCtx(t), &awsec2.DescribeVolumeStatusInput{VolumeIds: []string{id}})
	if err != nil {
		t.Fatalf("the SDK's DescribeVolumeStatus: %v", err)
	}
	if len(out.VolumeStatuses) != 1 || out.VolumeStatuses[0].VolumeStatus == nil ||
		out.VolumeStatuses[0].VolumeStatus.Status != types.VolumeStatusInfoStatusImpaired || len(out.VolumeStatuses[0].Events) != 1 ||
		!strings.Contains(aws.ToString(out.VolumeStatuses[0].Events[0].Description), pack) || out.VolumeStatuses[0].Events[0].NotBefore == nil {
		t.Errorf("the SDK parsed %+v", out.VolumeStatuses)
	}

	// Reads: one block fails with EIO (several times), the others are
	// right; the daemon logs the pack once.
	rf, err := os.OpenFile(d.volumePath(id), os.O_RDWR|syscall.O_DIRECT, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer rf.Close()
	buf := alignedBlock(block)
	bad := -1
	for blk := range 4 {
		for range 3 {
			_, err := rf.ReadAt(buf, int64(blk*block))
			switch {
			case errors.Is(err, syscall.EIO) && (bad == -1 || bad == blk):
				bad = blk
			case err != nil:
				t.Fatalf("read of block %d: %v", blk, err)
			case !bytes.Equal(buf, data[blk*block:][:block]):
				t.Fatalf("block %d reads wrong data", blk)
			}
		}
	}
	if bad == -1 {
		t.Fatal("no block fails to read")
	}
	for what, n := range map[string]int{"volume impaired": 1, pack: 1} {
		lines := 0
		for l := range strings.Lines(d.output()) {
			if strings.Contains(l, what) {
				lines++
			}
		}
		if lines != n {
			t.Errorf("%d lines of the daemon's log name %q, want %d", lines, what, n)
		}
	}

	// A whole-block write over the bad block: the volume is ok.
	copy(buf, bytes.Repeat([]byte{0x5a}, block))
	if _, err := rf.WriteAt(buf, int64(bad*block)); err != nil {
		t.Fatalf("write over bad block %d: %v", bad, err)
	}
	if err := rf.Sync(); err != nil {
		t.Fatal(err)
	}
	if vs := d.describeVolumeStatus(t, id); vs.VolumeStatus.Status != "ok" || len(vs.Events) != 0 {
		t.Errorf("after the write: %+v, want ok", vs)
	}
	if _, err := rf.ReadAt(buf, int64(bad*block)); err != nil || !bytes.Equal(buf, bytes.Repeat([]byte{0x5a}, block)) {
		t.Errorf("block %d after the write: %v", bad, err)
	}
	if !strings.Contains(d.output(), "volume recovered") {
		t.Errorf("the daemon's log does not say the volume recovered")
	}
}
