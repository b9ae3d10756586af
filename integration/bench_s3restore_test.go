package integration

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/cowvol/cowvol/cow/snapstore/miniotest"
)

// BenchmarkRestoreFromS3 runs the S3 restore figures alone (make bench
// runs them inside BenchmarkCowvol): go test ./integration -run '^$'
// -bench RestoreFromS3 -benchtime 1x.
func BenchmarkRestoreFromS3(b *testing.B) {
	r := &benchReport{Machine: machine(), Figures: map[string]float64{}}
	s3RestoreFigures(b, r)
	r.print(os.Stdout)
}

// s3RestoreFigures measures, against one MinIO on loopback, what the
// bucket gives (`aws s3 cp` of a 1 GiB snapshot's objects) next to the
// first sequential read of a volume restored from that snapshot, and
// their ratio (issue 19's target: >= 0.9).
func s3RestoreFigures(b *testing.B, r *benchReport) {
	aws, err := exec.LookPath("/usr/bin/aws")
	if err != nil {
		b.Fatal("the Debian awscli (/usr/bin/aws) is not installed (make prereqs installs it)")
	}
	srv := miniotest.Start(b)
	const bucket = "cowvol-bench"
	d := startS3Daemon(b, srv, srv.URL(bucket, "snaps"), "111111111111")
	api := newEC2(d.Socket)
	vol := d.createVolume(b, "1GiB")
	fill(b, d.volumePath(vol.VolumeId), 1)
	id, _ := api.createSnapshot(b, vol.VolumeId)
	api.waitCompleted(b, id)

	// What the bucket gives: every object of the store (the snapshot's
	// packs, segments and manifest: the bytes a restore reads), downloaded.
	dl := b.TempDir()
	cp := exec.Command(aws, "s3", "cp", "--recursive", "--only-show-errors", "--endpoint-url", srv.Endpoint(),
		"s3://"+bucket+"/snaps/", dl)
	cp.Env = append(os.Environ(), srv.Env()...)
	t0 := time.Now()
	if out, err := cp.CombinedOutput(); err != nil {
		b.Fatalf("aws s3 cp: %v\n%s", err, out)
	}
	cpSecs := time.Since(t0).Seconds()
	cpMiB := float64(dirBytes(b, dl)) / (1 << 20)
	os.RemoveAll(dl)
	r.add("S3: aws s3 cp download MiB/s (1 GiB snapshot)", cpMiB/cpSecs)

	// The first sequential read of a volume restored from it.
	rv := api.createVolumeFromSnapshot(b, id)
	waitFile(b, d.volumePath(rv))
	read := fioJob{"", "read", "1M", 4, false}.runOnce(b, d.volumePath(rv), "1G")
	r.add("S3: restored volume first seq read MiB/s", read)
	r.add("S3: restored first read / aws s3 cp", read/(cpMiB/cpSecs))
	// The same with dd: one 1 MiB read at a time (queue depth 1).
	rv2 := api.createVolumeFromSnapshot(b, id)
	waitFile(b, d.volumePath(rv2))
	t1 := time.Now()
	if out, err := exec.Command("dd", "if="+d.volumePath(rv2), "of=/dev/null", "bs=1M", "iflag=direct").CombinedOutput(); err != nil {
		b.Fatalf("dd: %v\n%s", err, out)
	}
	dd := 1024 / time.Since(t1).Seconds()
	r.add("S3: restored volume first seq read MiB/s (dd, qd1)", dd)
	r.add("S3: restored first read (dd) / aws s3 cp", dd/(cpMiB/cpSecs))
	fastRestoreFigure(b, r, api, id)
}

// fastRestoreFigure enables fast restores of snapshot id (1 GiB) and
// times a volume created from it from CreateVolume to available: the
// whole snapshot hydrated.
func fastRestoreFigure(b *testing.B, r *benchReport, api *ec2, id string) {
	api.call(b, "EnableFastSnapshotRestores", "AvailabilityZone.1", "us-east-1a", "SourceSnapshotId.1", id)
	for deadline := time.Now().Add(5 * time.Minute); ; time.Sleep(50 * time.Millisecond) {
		body := api.call(b, "DescribeFastSnapshotRestores", "Filter.1.Name", "snapshot-id", "Filter.1.Value.1", id)
		if xmlField(body, "state") == "enabled" {
			break
		}
		if time.Now().After(deadline) {
			b.Fatalf("fast restores of %s never enabled: %s", id, body)
		}
	}
	t0 := time.Now()
	vol := api.createVolumeFromSnapshot(b, id)
	for deadline := time.Now().Add(10 * time.Minute); ; time.Sleep(20 * time.Millisecond) {
		if xmlField(api.call(b, "DescribeVolumes", "VolumeId.1", vol), "status") == "available" {
			break
		}
		if time.Now().After(deadline) {
			b.Fatalf("fast restore volume %s never available", vol)
		}
	}
	r.add("S3: fast restore volume hydrated MiB/s (creating to available)", 1024/time.Since(t0).Seconds())
}

// runOnce reads or writes size bytes of target once (not time based) and
// returns MiB/s.
func (j fioJob) runOnce(b *testing.B, target, size string) float64 {
	out, err := exec.Command("fio", "--name=j", "--filename="+target, "--rw="+j.rw, "--bs="+j.bs,
		fmt.Sprintf("--iodepth=%d", j.iodepth), "--ioengine=libaio", "--direct=1", "--size="+size,
		"--output-format=json").Output()
	if err != nil {
		b.Fatalf("fio %s on %s: %v", j.rw, target, err)
	}
	return fioMiBs(b, out, j.rw)
}

// dirBytes is the total size of the files under dir.
func dirBytes(b *testing.B, dir string) int64 {
	var n int64
	err := filepath.Walk(dir, func(_ string, fi os.FileInfo, err error) error {
		if err == nil && fi.Mode().IsRegular() {
			n += fi.Size()
		}
		return err
	})
	if err != nil {
		b.Fatal(err)
	}
	return n
}
