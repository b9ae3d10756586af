package integration

import (
	"bufio"
	"crypto/sha256"
	"encoding/hex"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsec2 "github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"
)

// attachment is an attachment as describe-volumes prints it.
type attachment struct {
	AttachTime          string
	Device              string
	InstanceId          string
	State               string
	VolumeId            string
	DeleteOnTermination *bool
}

// hostInstanceID is this host's instance ID as the daemon documents it:
// "i-" and the first 17 hex digits of SHA-256("cowvol instance " +
// /etc/machine-id).
func hostInstanceID(t testing.TB) string {
	t.Helper()
	b, err := os.ReadFile("/etc/machine-id")
	if err != nil {
		t.Fatalf("this test needs /etc/machine-id: %v", err)
	}
	sum := sha256.Sum256([]byte("cowvol instance " + strings.TrimSpace(string(b))))
	return "i-" + hex.EncodeToString(sum[:])[:17]
}

// loopBacking is the backing file of loop device dev ("" if it has none).
func loopBacking(dev string) string {
	b, err := os.ReadFile(filepath.Join("/sys/block", filepath.Base(dev), "loop", "backing_file"))
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
}

// detachInCleanup detaches loop device dev at the end of the test if it
// is still backed by file (by device name, never another's device). A
// device left on the file of a mount that is gone names it by the volume
// ID alone ("/vol-..."): that counts too.
func detachInCleanup(t testing.TB, dev, file string) {
	t.Cleanup(func() {
		if b := loopBacking(dev); b != file && (b == "" || filepath.Base(b) != filepath.Base(file)) {
			return
		}
		if r := run(cmdTimeout, nil, tool(t, "losetup"), "-d", dev); r.Code != 0 {
			t.Errorf("cleanup: losetup -d %s: %v", dev, r)
		}
	})
}

// attachVolumeCLI runs attach-volume and checks what it printed.
func attachVolumeCLI(t *testing.T, d *daemon, id, device string) attachment {
	t.Helper()
	var a attachment
	d.mustJSON(t, d.mustCLI(t, "attach-volume", "--volume-id", id, "--instance-id", hostInstanceID(t), "--device", device), &a)
	if !strings.HasPrefix(a.Device, "/dev/loop") || a.State != "attaching" || a.VolumeId != id || a.InstanceId != hostInstanceID(t) {
		t.Fatalf("attach-volume printed %+v", a)
	}
	detachInCleanup(t, a.Device, d.volumePath(id))
	return a
}

// describeAttachment returns the volume and its one attachment, failing
// unless it has exactly one.
func describeAttachment(t *testing.T, d *daemon, id string) (string, attachment) {
	t.Helper()
	var out struct {
		Volumes []struct {
			State       string
			Attachments []attachment
		}
	}
	d.mustJSON(t, d.mustCLI(t, "describe-volumes", "--volume-ids", id), &out)
	if len(out.Volumes) != 1 || len(out.Volumes[0].Attachments) != 1 {
		t.Fatalf("describe-volumes %s: %+v, want one attachment", id, out)
	}
	return out.Volumes[0].State, out.Volumes[0].Attachments[0]
}

// A user attaches a volume with the API, puts ext4 on it, and the daemon
// restarts under the mount; detach is refused while mounted; after a
// "reboot" (the loop device gone, the daemon started again) the attachment
// is re-created; a volume attached by hand is reported too.
func TestAttachVolumeWithMount(t *testing.T) {
	requirePrereqs(t)
	d := startDaemon(t)
	top := t
	vol := d.createVolume(t, "1GiB")
	var a attachment
	var m *fsMount
	var want map[string]string

	step(t, "attach-volume --device /dev/sdf: a loop device with direct I/O, reported in-use", func(t *testing.T) {
		a = attachVolumeCLI(top, d, vol.VolumeId, "/dev/sdf")
		if got := loopBacking(a.Device); got != d.volumePath(vol.VolumeId) {
			t.Fatalf("%s is backed by %q", a.Device, got)
		}
		if dio, _ := os.ReadFile(filepath.Join("/sys/block", filepath.Base(a.Device), "loop", "dio")); strings.TrimSpace(string(dio)) != "1" {
			t.Errorf("%s runs without direct I/O", a.Device)
		}
		state, got := describeAttachment(t, d, vol.VolumeId)
		if state != "in-use" || got.Device != a.Device || got.InstanceId != hostInstanceID(t) || got.State != "attached" ||
			got.AttachTime == "" || got.DeleteOnTermination == nil || *got.DeleteOnTermination {
			t.Errorf("describe-volumes: %s, %+v", state, got)
		}
		d.mustCLI(t, "wait", "volume-in-use", "--volume-ids", vol.VolumeId)
		var out struct{ Volumes []volume }
		d.mustJSON(t, d.mustCLI(t, "describe-volumes", "--filter", "attachment.instance-id="+hostInstanceID(t)), &out)
		if len(out.Volumes) != 1 {
			t.Errorf("attachment.instance-id filter: %+v", out.Volumes)
		}
	})

	step(t, "bad input gets EC2's codes and changes nothing", func(t *testing.T) {
		other := d.createVolume(t, "1GiB")
		for _, tt := range []struct {
			args []string
			code string
		}{
			{[]string{"attach-volume", "--volume-id", vol.VolumeId, "--instance-id", hostInstanceID(t), "--device", "/dev/sdg"}, "VolumeInUse"},
			{[]string{"attach-volume", "--volume-id", other.VolumeId, "--instance-id", "i-0123456789abcdef0", "--device", "/dev/sdg"}, "InvalidInstanceID.NotFound"},
			{[]string{"attach-volume", "--volume-id", other.VolumeId, "--instance-id", "web-1", "--device", "/dev/sdg"}, "InvalidInstanceID.Malformed"},
			{[]string{"attach-volume", "--volume-id", other.VolumeId, "--instance-id", hostInstanceID(t), "--device", "floppy"}, "InvalidParameterValue"},
			{[]string{"attach-volume", "--volume-id", other.VolumeId, "--instance-id", hostInstanceID(t), "--device", a.Device}, "InvalidParameterValue"},
			{[]string{"attach-volume", "--volume-id", "vol-0123456789abcdef0", "--instance-id", hostInstanceID(t), "--device", "/dev/sdg"}, "InvalidVolume.NotFound"},
			{[]string{"attach-volume", "--volume-id", other.VolumeId, "--instance-id", hostInstanceID(t), "--device", "/dev/sdg", "--dry-run"}, "DryRunOperation"},
			{[]string{"detach-volume", "--volume-id", other.VolumeId}, "IncorrectState"},
			{[]string{"detach-volume", "--volume-id", vol.VolumeId, "--device", "/dev/loop99999"}, "InvalidAttachment.NotFound"},
			{[]string{"detach-volume", "--volume-id", vol.VolumeId, "--dry-run"}, "DryRunOperation"},
		} {
			_, stderr, code := d.cli(t, tt.args...)
			if code == 0 || !strings.Contains(stderr, "("+tt.code+")") {
				t.Errorf("%v: exit %d, %q; want %s", tt.args, code, stderr, tt.code)
			}
		}
		if v := d.describeVolume(t, other.VolumeId); v.State != "available" {
			t.Errorf("%s is %s after refused attachments", other.VolumeId, v.State)
		}
		if state, got := describeAttachment(t, d, vol.VolumeId); state != "in-use" || got.Device != a.Device {
			t.Errorf("after refused calls: %s %+v", state, got)
		}
		d.mustCLI(t, "delete-volume", "--volume-id", other.VolumeId)
	})

	step(t, "mkfs.ext4 and mount on the device, write files", func(t *testing.T) {
		mkfsExt4(t, a.Device)
		m = mountDev(top, a.Device, top.TempDir())
		want = writeTree(t, m.Dir, 3, 40, 256*kib)
		syscall.Sync()
	})

	step(t, "detach-volume is refused while the device is mounted", func(t *testing.T) {
		_, stderr, code := d.cli(t, "detach-volume", "--volume-id", vol.VolumeId)
		if code == 0 || !strings.Contains(stderr, "(VolumeInUse)") {
			t.Errorf("detach of a mounted device: exit %d, %q", code, stderr)
		}
		if loopBacking(a.Device) != d.volumePath(vol.VolumeId) {
			t.Fatalf("the refused detach detached %s", a.Device)
		}
	})

	step(t, "the server is killed and restarted under the mount: attachment kept, files intact", func(t *testing.T) {
		d.killServer(t)
		state, got := describeAttachment(t, d, vol.VolumeId)
		if state != "in-use" || got.Device != a.Device || got.State != "attached" || got.AttachTime != a.AttachTime {
			t.Errorf("after the restart: %s %+v, want %+v", state, got, a)
		}
		checkTree(t, m.Dir, want)
		more := writeTree(t, m.Dir, 4, 10, 64*kib)
		for k, v := range more {
			want[k] = v
		}
		syscall.Sync()
	})

	step(t, "umount, detach-volume: detaching, then available; the loop device is free", func(t *testing.T) {
		m.unmount(t)
		var out attachment
		d.mustJSON(t, d.mustCLI(t, "detach-volume", "--volume-id", vol.VolumeId), &out)
		if out.State != "detaching" || out.Device != a.Device {
			t.Errorf("detach-volume printed %+v", out)
		}
		d.mustCLI(t, "wait", "volume-available", "--volume-ids", vol.VolumeId, "--timeout", "20s")
		if b := loopBacking(a.Device); b != "" {
			t.Errorf("%s still backed by %s", a.Device, b)
		}
		var v struct {
			Volumes []struct{ Attachments []attachment }
		}
		d.mustJSON(t, d.mustCLI(t, "describe-volumes", "--volume-ids", vol.VolumeId), &v)
		if len(v.Volumes[0].Attachments) != 0 {
			t.Errorf("attachments after detach: %+v", v.Volumes[0].Attachments)
		}
	})

	step(t, "a reboot: attached, the loop device gone, the daemon started again re-creates it", func(t *testing.T) {
		a = attachVolumeCLI(top, d, vol.VolumeId, "/dev/xvdf")
		mustRun(t, "losetup", "-d", a.Device)
		for deadline := time.Now().Add(30 * time.Second); loopBacking(a.Device) != "" && time.Now().Before(deadline); {
			time.Sleep(20 * time.Millisecond)
		}
		if err := d.stop(t); err != nil {
			t.Fatal(err)
		}
		d.restart(t)
		state, got := describeAttachment(t, d, vol.VolumeId)
		if state != "in-use" || got.State != "attached" || got.AttachTime != a.AttachTime || loopBacking(got.Device) != d.volumePath(vol.VolumeId) {
			t.Fatalf("after the reboot: %s %+v (backing %q)", state, got, loopBacking(got.Device))
		}
		detachInCleanup(top, got.Device, d.volumePath(vol.VolumeId))
		e2fsckClean(t, got.Device)
		m2 := mountDev(t, got.Device, t.TempDir())
		checkTree(t, m2.Dir, want)
		m2.unmount(t)
		d.mustCLI(t, "detach-volume", "--volume-id", vol.VolumeId)
		d.mustCLI(t, "wait", "volume-available", "--volume-ids", vol.VolumeId, "--timeout", "20s")
	})

	step(t, "a volume attached by hand with losetup is reported attached", func(t *testing.T) {
		lo := attachLoop(t, d.volumePath(vol.VolumeId))
		state, got := describeAttachment(t, d, vol.VolumeId)
		if state != "in-use" || got.Device != lo.Dev || got.State != "attached" || got.InstanceId != hostInstanceID(t) {
			t.Errorf("hand-attached: %s %+v", state, got)
		}
		lo.detach(t)
		waitVolumeState(t, d, vol.VolumeId, "available", 10*time.Second)
	})

	step(t, "detach-volume is refused while a process holds the device open", func(t *testing.T) {
		dev := attachVolumeCLI(top, d, vol.VolumeId, "/dev/sdg").Device
		holder := holdOpen(t, dev)
		_, stderr, code := d.cli(t, "detach-volume", "--volume-id", vol.VolumeId)
		if code == 0 || !strings.Contains(stderr, "(VolumeInUse)") || !strings.Contains(stderr, "open in process") {
			t.Errorf("detach of a device held open: exit %d, %q", code, stderr)
		}
		holder()
		d.mustCLI(t, "detach-volume", "--volume-id", vol.VolumeId)
		d.mustCLI(t, "wait", "volume-available", "--volume-ids", vol.VolumeId, "--timeout", "20s")
	})

	step(t, "detach-volume --force of a mounted device: detaching until unmounted", func(t *testing.T) {
		// As docs/user-guide.md does it: the CLI's --instance-id defaults to
		// this host's, --query picks the device.
		dev := strings.TrimSpace(d.mustCLI(t, "attach-volume", "--volume-id", vol.VolumeId, "--device", "/dev/sdh",
			"--query", "Device", "--output", "text"))
		if !strings.HasPrefix(dev, "/dev/loop") {
			t.Fatalf("attach-volume --query Device --output text printed %q", dev)
		}
		detachInCleanup(top, dev, d.volumePath(vol.VolumeId))
		a = attachment{Device: dev}
		mf := mountDev(t, a.Device, t.TempDir())
		var out attachment
		d.mustJSON(t, d.mustCLI(t, "detach-volume", "--volume-id", vol.VolumeId, "--force"), &out)
		if out.State != "detaching" {
			t.Errorf("forced detach printed %+v", out)
		}
		if _, got := describeAttachment(t, d, vol.VolumeId); got.State != "detaching" {
			t.Errorf("after a forced detach while mounted: %+v", got)
		}
		mf.unmount(t)
		d.mustCLI(t, "wait", "volume-available", "--volume-ids", vol.VolumeId, "--timeout", "20s")
	})
}

// The AWS SDK for Go drives AttachVolume, ModifyVolume and DetachVolume
// over the socket, with its waiters.
func TestAttachVolumeWithSDK(t *testing.T) {
	requirePrereqs(t)
	d := startDaemon(t)
	c := sdkClient(d)
	ctx := sdkCtx(t)
	vol := d.createVolume(t, "1GiB")
	out, err := c.AttachVolume(ctx, &awsec2.AttachVolumeInput{VolumeId: aws.String(vol.VolumeId),
		InstanceId: aws.String(hostInstanceID(t)), Device: aws.String("/dev/sdf")})
	if err != nil {
		t.Fatal(err)
	}
	dev := aws.ToString(out.Device)
	detachInCleanup(t, dev, d.volumePath(vol.VolumeId))
	if out.State != types.VolumeAttachmentStateAttaching || !strings.HasPrefix(dev, "/dev/loop") || out.AttachTime == nil {
		t.Fatalf("AttachVolume: %+v", out)
	}
	if err := awsec2.NewVolumeInUseWaiter(c).Wait(ctx, &awsec2.DescribeVolumesInput{VolumeIds: []string{vol.VolumeId}}, time.Minute); err != nil {
		t.Fatalf("VolumeInUse waiter: %v", err)
	}
	vols, err := c.DescribeVolumes(ctx, &awsec2.DescribeVolumesInput{VolumeIds: []string{vol.VolumeId}})
	if err != nil || len(vols.Volumes[0].Attachments) != 1 {
		t.Fatalf("DescribeVolumes: %+v, %v", vols, err)
	}
	at := vols.Volumes[0].Attachments[0]
	if aws.ToString(at.Device) != dev || aws.ToString(at.InstanceId) != hostInstanceID(t) || at.State != types.VolumeAttachmentStateAttached ||
		aws.ToBool(at.DeleteOnTermination) || at.AttachTime == nil {
		t.Errorf("attachment %+v", at)
	}
	// Grown while attached: the loop device gets the new size.
	mod, err := c.ModifyVolume(ctx, &awsec2.ModifyVolumeInput{VolumeId: aws.String(vol.VolumeId), Size: aws.Int32(2)})
	if err != nil || mod.VolumeModification.ModificationState != types.VolumeModificationStateModifying {
		t.Fatalf("ModifyVolume: %+v, %v", mod, err)
	}
	if got := loopSizeBytes(t, dev); got != 2*gib {
		t.Errorf("%s is %d bytes after ModifyVolume, want %d", dev, got, 2*gib)
	}
	_, err = c.ModifyVolume(ctx, &awsec2.ModifyVolumeInput{VolumeId: aws.String(vol.VolumeId), Size: aws.Int32(1)})
	requireAPIError(t, "ModifyVolume", err, "InvalidParameterValue")
	mods, err := c.DescribeVolumesModifications(ctx, &awsec2.DescribeVolumesModificationsInput{VolumeIds: []string{vol.VolumeId}})
	if err != nil || len(mods.VolumesModifications) != 1 || mods.VolumesModifications[0].ModificationState != types.VolumeModificationStateCompleted {
		t.Fatalf("DescribeVolumesModifications: %+v, %v", mods, err)
	}
	_, err = c.DetachVolume(ctx, &awsec2.DetachVolumeInput{VolumeId: aws.String("vol-0123456789abcdef0")})
	requireAPIError(t, "DetachVolume", err, "InvalidVolume.NotFound")
	det, err := c.DetachVolume(ctx, &awsec2.DetachVolumeInput{VolumeId: aws.String(vol.VolumeId), InstanceId: aws.String(hostInstanceID(t))})
	if err != nil || det.State != types.VolumeAttachmentStateDetaching {
		t.Fatalf("DetachVolume: %+v, %v", det, err)
	}
	if err := awsec2.NewVolumeAvailableWaiter(c).Wait(ctx, &awsec2.DescribeVolumesInput{VolumeIds: []string{vol.VolumeId}}, time.Minute); err != nil {
		t.Fatalf("VolumeAvailable waiter: %v", err)
	}
}

// holdOpen starts a process that holds dev open (read-only, not
// exclusively) and returns once it does; the returned func stops it (by
// its PID) and waits for it, as does the test's cleanup.
func holdOpen(t testing.TB, dev string) (release func()) {
	t.Helper()
	cmd := exec.Command("sh", "-c", "exec 3<"+dev+"; echo ready; exec sleep 300")
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var once sync.Once
	release = func() {
		once.Do(func() {
			cmd.Process.Kill()
			cmd.Wait()
		})
	}
	t.Cleanup(release)
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil || strings.TrimSpace(line) != "ready" {
		t.Fatalf("the process holding %s did not start: %q, %v", dev, line, err)
	}
	return release
}

// After a crash of everything (supervisor and server killed, the FUSE
// mount left disconnected), the loop device of an attachment names the
// volume file but is backed by the dead connection's: the daemon started
// again attaches the volume anew, on a device backed by the live file.
func TestAttachVolumeAfterCrashOfEverything(t *testing.T) {
	requirePrereqs(t)
	d := startDaemon(t)
	vol := d.createVolume(t, "1GiB")
	old := attachVolumeCLI(t, d, vol.VolumeId, "/dev/sdf")
	d.kill9(t)
	d.restart(t)
	state, got := describeAttachment(t, d, vol.VolumeId)
	if state != "in-use" || got.State != "attached" || got.Device == old.Device || got.AttachTime != old.AttachTime {
		t.Fatalf("after the crash: %s %+v (was %+v)", state, got, old)
	}
	detachInCleanup(t, got.Device, d.volumePath(vol.VolumeId))
	// The new device is the live file: what is written to it reads back
	// through the volume file.
	data := strings.Repeat("cowvol after a crash\n", 200)
	f, err := os.OpenFile(got.Device, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 4096)
	copy(buf, data)
	if _, err := f.WriteAt(buf, 0); err != nil {
		t.Fatal(err)
	}
	if err := f.Sync(); err != nil {
		t.Fatal(err)
	}
	f.Close()
	back := make([]byte, 4096)
	vf, err := os.Open(d.volumePath(vol.VolumeId))
	if err != nil {
		t.Fatal(err)
	}
	defer vf.Close()
	if _, err := vf.ReadAt(back, 0); err != nil || string(back) != string(buf) {
		t.Fatalf("read back through the volume file: %v", err)
	}
}
