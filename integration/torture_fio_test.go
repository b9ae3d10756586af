package integration

import (
	"testing"
)

// fio with --verify=crc32c through a loop device (direct I/O) on a volume,
// then the daemon killed with -9 and restarted; then a snapshot
// and a volume restored from it: fio's verify pass finds every block it
// wrote, on the volume after the restart and on the restored volume.
func TestTortureFioVerify(t *testing.T) {
	requirePrereqs(t)
	fio := tool(t, "fio")
	d := startDaemon(t)
	vol := d.createVolume(t, "256MiB")
	job := []string{"--name=verify", "--rw=randwrite", "--bsrange=4k-256k", "--size=192M", "--direct=1",
		"--ioengine=libaio", "--iodepth=8", "--verify=crc32c", "--verify_fatal=1", "--randrepeat=1", "--fsync=16", "--end_fsync=1",
		"--verify_state_save=0"} // no state file in the working directory
	fioRun := func(t *testing.T, dev string, extra ...string) {
		t.Helper()
		r := run(cmdTimeout, nil, fio, append(append([]string{"--filename=" + dev}, job...), extra...)...)
		t.Logf("$ fio %v %v -> exit %d", job, extra, r.Code)
		if r.Code != 0 {
			t.Fatalf("fio on %s: %v", dev, r)
		}
	}
	step(t, "fio writes and verifies through the loop device", func(t *testing.T) {
		lo := attachLoop(t, d.volumePath(vol.VolumeId))
		fioRun(t, lo.Dev)
		lo.detach(t)
	})
	step(t, "kill -9, restart: fio's verify pass finds every block", func(t *testing.T) {
		d.kill9(t)
		d.restart(t)
		lo := attachLoop(t, d.volumePath(vol.VolumeId))
		fioRun(t, lo.Dev, "--verify_only")
		lo.detach(t)
	})
	step(t, "snapshot, restore: the restored volume verifies too", func(t *testing.T) {
		snap := d.createSnapshot(t, vol.VolumeId)
		d.waitSnapshotCompleted(t, snap.SnapshotId)
		var rv volume
		d.mustJSON(t, d.mustCLI(t, "create-volume", "--snapshot-id", snap.SnapshotId), &rv)
		lo := attachLoop(t, d.volumePath(rv.VolumeId))
		fioRun(t, lo.Dev, "--verify_only")
	})
}
