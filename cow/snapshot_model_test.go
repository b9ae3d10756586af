package cow

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"
)

// TestModelSnapshots runs random writes, discards, snapshots, restores,
// snapshot deletions and engine restarts against a reference model. Every
// snapshot (pending and completed) and every volume restored from one must
// equal the model's view at the snapshot's call, byte for byte.
//
// It runs three ways: plaintext volumes; an encrypted volume and its
// lineage; and mixed, where restores of plaintext snapshots randomly ask
// for encryption (a new lineage whose first snapshot recodes its base).
func TestModelSnapshots(t *testing.T) {
	for _, mode := range []snapshotModelMode{plaintextModel, encryptedModel, mixedModel} {
		t.Run(string(mode), func(t *testing.T) {
			seed := modelSeedOrRandom()
			t.Logf("seed %d (replay with -run TestModelSnapshots/%s -model.seed=%d)", seed, mode, seed)
			runSnapshotModel(t, seed, *modelSteps/2, mode, false)
		})
	}
}

// TestSnapshotsDuringMapLoad is TestModelSnapshots with every start's
// map loads held at a random page until a random later step: forks,
// reads of pending snapshots, deletions and writes to pages not loaded
// yet while the flusher waits for the load. (A restore waits for its
// snapshot, whose flush waits for the load: the gate opens first.)
func TestSnapshotsDuringMapLoad(t *testing.T) {
	for _, mode := range []snapshotModelMode{plaintextModel, encryptedModel} {
		t.Run(string(mode), func(t *testing.T) {
			seed := modelSeedOrRandom()
			t.Logf("seed %d (replay with -run TestSnapshotsDuringMapLoad/%s -model.seed=%d)", seed, mode, seed)
			runSnapshotModel(t, seed, *modelSteps/2, mode, true)
		})
	}
}

type snapshotModelMode string

const (
	plaintextModel snapshotModelMode = "plaintext"
	encryptedModel snapshotModelMode = "encrypted"
	mixedModel     snapshotModelMode = "mixed"
)

func runSnapshotModel(t *testing.T, seed uint64, steps int, mode snapshotModelMode, gated bool) {
	rng := rand.New(rand.NewPCG(seed, seed^0x5851f42d4c957f2d))
	dir := t.TempDir()
	var keys KeyManager
	if mode != plaintextModel {
		keys = testKeyring(t)
	}
	const bs = 16 << 10
	size := int64(2 << 20)
	var gate *loadGate
	openTestEngine := func(t *testing.T, dir string) *Engine { return openKeyedEngine(t, dir, keys) }
	if gated {
		size = 16 << 20 // 2 pages
		openTestEngine = func(t *testing.T, dir string) *Engine {
			gate = newLoadGate(uint64(rng.IntN(2)))
			return openKeyedGatedEngine(t, dir, keys, gate)
		}
	}
	eng := openTestEngine(t, dir)
	vi, err := eng.CreateVolume(ctx, CreateVolumeParams{Size: size, BlockSize: bs, Encrypted: mode == encryptedModel})
	if err != nil {
		t.Fatal(err)
	}
	type volModel struct {
		id  string
		ref []byte
	}
	vols := []*volModel{{id: vi.ID, ref: make([]byte, size)}}
	snaps := map[string][]byte{} // snapshot ID -> content at its call
	var snapIDs []string
	handles := map[string]*Volume{}
	handle := func(id string) *Volume {
		if h, ok := handles[id]; ok {
			return h
		}
		h, err := eng.OpenVolume(id)
		if err != nil {
			t.Fatalf("open %s: %v", id, err)
		}
		handles[id] = h
		return h
	}
	closeHandles := func() {
		for id, h := range handles {
			h.Close()
			delete(handles, id)
		}
	}
	checkSnapshot := func(step int, id string) {
		got := make([]byte, len(snaps[id]))
		if _, err := eng.ReadSnapshot(ctx, id, got, 0); err != nil {
			t.Fatalf("step %d: read snapshot %s: %v", step, id, err)
		}
		if !bytes.Equal(got, snaps[id]) {
			info, _ := eng.SnapshotInfo(id)
			t.Fatalf("step %d: snapshot %s (%s) differs from the model at byte %d", step, id, info.State, firstDiff(got, snaps[id]))
		}
	}
	for step := range steps {
		vm := vols[rng.IntN(len(vols))]
		h := handle(vm.id)
		switch op := rng.IntN(100); {
		case op < 40:
			off := rng.Int64N(size)
			n := min(int64(1+rng.IntN(3*bs)), size-off)
			p := make([]byte, n)
			for i := range p {
				p[i] = byte(rng.IntN(255) + 1)
			}
			if _, err := h.WriteAt(p, off); err != nil {
				t.Fatalf("step %d: write: %v", step, err)
			}
			copy(vm.ref[off:], p)
		case op < 48:
			off := rng.Int64N(size)
			n := min(int64(1+rng.IntN(4*bs)), size-off)
			if err := h.Punch(off, n); err != nil {
				t.Fatalf("step %d: punch: %v", step, err)
			}
			clear(vm.ref[off : off+n])
		case op < 60:
			si, err := eng.CreateSnapshot(ctx, CreateSnapshotParams{VolumeID: vm.id, Description: fmt.Sprint("step ", step)})
			if errors.Is(err, ErrConcurrentSnapshotLimit) {
				continue
			}
			if err != nil {
				t.Fatalf("step %d: snapshot: %v", step, err)
			}
			snaps[si.ID] = bytes.Clone(vm.ref)
			snapIDs = append(snapIDs, si.ID)
		case op < 72 && len(snapIDs) > 0:
			checkSnapshot(step, snapIDs[rng.IntN(len(snapIDs))])
		case op < 78 && len(snapIDs) > 0:
			// Restore a completed snapshot into a new volume.
			id := snapIDs[rng.IntN(len(snapIDs))]
			if gate != nil {
				gate.open()
			}
			waitSnapshot(t, eng, id)
			nv, err := eng.CreateVolume(ctx, CreateVolumeParams{SnapshotID: id, Encrypted: mode == mixedModel && rng.IntN(2) == 0})
			if err != nil {
				t.Fatalf("step %d: restore %s: %v", step, id, err)
			}
			vols = append(vols, &volModel{id: nv.ID, ref: bytes.Clone(snaps[id])})
		case op < 82 && len(snapIDs) > 1:
			i := rng.IntN(len(snapIDs))
			id := snapIDs[i]
			if err := eng.DeleteSnapshot(ctx, id); err != nil {
				t.Fatalf("step %d: delete snapshot %s: %v", step, id, err)
			}
			snapIDs = append(snapIDs[:i], snapIDs[i+1:]...)
			delete(snaps, id)
		case op < 85:
			closeHandles()
			if err := eng.Close(); err != nil {
				t.Fatalf("step %d: close: %v", step, err)
			}
			eng = openTestEngine(t, dir)
		default:
			got := make([]byte, size)
			if _, err := h.ReadAt(got, 0); err != nil {
				t.Fatalf("step %d: read: %v", step, err)
			}
			if !bytes.Equal(got, vm.ref) {
				t.Fatalf("step %d: volume %s differs from the model at byte %d", step, vm.id, firstDiff(got, vm.ref))
			}
		}
	}
	if gate != nil {
		gate.open()
	}
	for _, id := range snapIDs {
		waitSnapshot(t, eng, id)
		checkSnapshot(steps, id)
	}
	for _, vm := range vols {
		got := make([]byte, size)
		if _, err := handle(vm.id).ReadAt(got, 0); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, vm.ref) {
			t.Fatalf("final: volume %s differs from the model at byte %d", vm.id, firstDiff(got, vm.ref))
		}
	}
	closeHandles()
}

// waitSnapshot waits until snapshot id is completed.
func waitSnapshot(t testing.TB, eng *Engine, id string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		si, err := eng.SnapshotInfo(id)
		if err != nil {
			t.Fatalf("snapshot %s: %v", id, err)
		}
		switch si.State {
		case SnapshotCompleted:
			return
		case SnapshotError:
			t.Fatalf("snapshot %s failed: %s", id, si.StatusMessage)
		}
		if time.Now().After(deadline) {
			t.Fatalf("snapshot %s still %s (%d%%) after 30s", id, si.State, si.Progress)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
