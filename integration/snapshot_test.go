package integration

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/cowvol/cowvol/cow/snapfmt"
	"github.com/cowvol/cowvol/cow/snapstore"
	"github.com/cowvol/cowvol/cow/snapstore/miniotest"
)

// A user snapshots a live ext4 file system with --freeze while a writer
// keeps going, waits for completed, creates a volume from the snapshot and
// finds it clean and exactly as it was at the call; the snapshot file
// itself is a clean file system too.
func TestSnapshotLiveExt4AndRestore(t *testing.T) {
	requirePrereqs(t)
	d := startDaemon(t)
	vol := d.createVolume(t, "1GiB")
	lo := attachLoop(t, d.volumePath(vol.VolumeId))
	mkfsExt4(t, lo.Dev)
	m := mountDev(t, lo.Dev, t.TempDir())
	var want map[string]string
	var snap snapshot

	step(t, "write a tree of files and sync", func(t *testing.T) {
		want = writeTree(t, filepath.Join(m.Dir, "static"), 7, 150, 512*kib)
		syscall.Sync()
	})

	stop := make(chan struct{})
	var wrote atomic.Int64
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { // a writer that never pauses
		defer wg.Done()
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			p := filepath.Join(m.Dir, "busy", fmt.Sprintf("w%03d", i%200))
			os.MkdirAll(filepath.Dir(p), 0o755)
			if err := os.WriteFile(p, make([]byte, 64*kib+int64(i%4096)), 0o644); err != nil {
				return
			}
			wrote.Add(1)
		}
	}()
	t.Cleanup(func() { close(stop); wg.Wait() })

	step(t, "create-snapshot --freeze while the writer runs", func(t *testing.T) {
		time.Sleep(200 * time.Millisecond)
		before := wrote.Load()
		snap = d.createSnapshot(t, vol.VolumeId, "--freeze", m.Dir, "--description", "live", "--tag", "kind=test")
		if snap.State != "pending" && snap.State != "completed" {
			t.Errorf("State %q, want pending", snap.State)
		}
		if snap.Description != "live" || snap.VolumeId != vol.VolumeId {
			t.Errorf("snapshot %+v", snap)
		}
		time.Sleep(200 * time.Millisecond)
		if wrote.Load() == before {
			t.Error("the writer made no progress around the snapshot: the file system stayed frozen?")
		}
	})

	step(t, "change the tree after the call: the snapshot must not see it", func(t *testing.T) {
		writeTree(t, filepath.Join(m.Dir, "static"), 8, 40, 512*kib)
		syscall.Sync()
	})

	step(t, "wait snapshot-completed; describe-snapshots shows it completed 100%", func(t *testing.T) {
		d.waitSnapshotCompleted(t, snap.SnapshotId)
		got := d.describeSnapshots(t, "--snapshot-ids", snap.SnapshotId)
		if len(got) != 1 || got[0].State != "completed" || got[0].Progress != "100%" {
			t.Fatalf("describe-snapshots = %+v", got)
		}
		if got := d.describeSnapshots(t, "--filter", "tag:kind=test"); len(got) != 1 {
			t.Errorf("filter tag:kind=test found %d snapshots", len(got))
		}
	})

	step(t, "the snapshot file is a clean file system", func(t *testing.T) {
		sl := attachLoop(t, filepath.Join(d.MountDir, "snapshots", snap.SnapshotId), true)
		e2fsckClean(t, sl.Dev)
		sl.detach(t)
	})

	step(t, "create-volume --snapshot-id: e2fsck clean, files as at the call", func(t *testing.T) {
		var rv volume
		d.mustJSON(t, d.mustCLI(t, "create-volume", "--snapshot-id", snap.SnapshotId), &rv)
		if rv.SnapshotId != snap.SnapshotId || rv.SizeBytes != gib {
			t.Fatalf("restored volume %+v", rv)
		}
		rl := attachLoop(t, d.volumePath(rv.VolumeId))
		e2fsckClean(t, rl.Dev)
		rm := mountDev(t, rl.Dev, t.TempDir())
		checkTree(t, filepath.Join(rm.Dir, "static"), want)
	})
}

// A snapshot still pending when the daemon is killed with SIGKILL resumes
// after the restart and captures the volume as it was at the call, not as
// it is after writes that followed the restart. The snapshot store is
// MinIO, stopped with SIGSTOP before create-snapshot: the flush cannot
// store anything, so the snapshot is pending at the kill, which the test
// checks (describe-snapshots just before it, and no manifest in the bucket
// after it, before the restart).
func TestSnapshotResumesAfterKill9(t *testing.T) {
	requirePrereqs(t)
	srv := miniotest.Start(t)
	url := srv.URL("cowvol-kill9", "region-1")
	d := startS3Daemon(t, srv, url, "111111111111")
	vol := d.createVolume(t, "2GiB")
	var want map[string]string
	var snap snapshot

	step(t, "ext4 with 600 MiB of files, unmounted", func(t *testing.T) {
		lo := attachLoop(t, d.volumePath(vol.VolumeId))
		mkfsExt4(t, lo.Dev)
		m := mountDev(t, lo.Dev, t.TempDir())
		want = writeTree(t, m.Dir, 11, 300, 4*mib)
		m.unmount(t)
		lo.detach(t)
	})

	step(t, "stop MinIO (SIGSTOP); create-snapshot; it is pending; kill -9", func(t *testing.T) {
		pid := srv.PID()
		if err := syscall.Kill(pid, syscall.SIGSTOP); err != nil {
			t.Fatal(err)
		}
		resumed := false
		resume := func() {
			if !resumed {
				resumed = true
				if err := syscall.Kill(pid, syscall.SIGCONT); err != nil {
					t.Errorf("SIGCONT MinIO: %v", err)
				}
			}
		}
		t.Cleanup(resume)
		snap = d.createSnapshot(t, vol.VolumeId)
		got := d.describeSnapshots(t, "--snapshot-ids", snap.SnapshotId)
		if len(got) != 1 || got[0].State != "pending" {
			t.Fatalf("with the store stopped: %+v", got)
		}
		d.kill9(t)
		resume()
		st, err := snapstore.Open(context.Background(), url)
		if err != nil {
			t.Fatal(err)
		}
		if ok, err := st.Exists(context.Background(), snapfmt.ManifestKey(snap.SnapshotId)); err != nil || ok {
			t.Fatalf("the snapshot's manifest is in the bucket after the kill (%v, %v): it was not pending", ok, err)
		}
	})

	step(t, "overwrite the volume after the restart: the snapshot keeps its content", func(t *testing.T) {
		d.restart(t)
		fillVolume(t, d.volumePath(vol.VolumeId), 99, 64*mib)
	})

	step(t, "the snapshot completes and restores to the files of its call", func(t *testing.T) {
		d.waitSnapshotCompleted(t, snap.SnapshotId)
		var rv volume
		d.mustJSON(t, d.mustCLI(t, "create-volume", "--snapshot-id", snap.SnapshotId), &rv)
		rl := attachLoop(t, d.volumePath(rv.VolumeId))
		e2fsckClean(t, rl.Dev)
		rm := mountDev(t, rl.Dev, t.TempDir())
		checkTree(t, rm.Dir, want)
	})
}
