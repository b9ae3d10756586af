package integration

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// fsLoad is a user's load on an ext4 on a cowvol volume: a writer creating
// files (fsync'd, their directories fsync'd) and rewriting one file in
// place (pwrite + fdatasync), remembering what each acknowledged fsync
// covers. The load must never see an error.
type fsLoad struct {
	name string
	dir  string // the mounted file system
	seed uint64

	mu      sync.Mutex
	acked   map[string]string // relative path -> SHA-256 of its content
	hot     []byte            // the in-place file's acknowledged content
	written int
	err     error
	stop    chan struct{}
	done    chan struct{}
}

const hotSize = 1 << 20

func startLoad(t *testing.T, name, dir string, seed uint64) *fsLoad {
	t.Helper()
	l := &fsLoad{name: name, dir: dir, seed: seed, acked: map[string]string{}, stop: make(chan struct{}), done: make(chan struct{})}
	hot := filepath.Join(dir, "hot")
	if _, err := writeSynced(hot, seed, 0, hotSize); err != nil && !errors.Is(err, os.ErrExist) {
		t.Fatal(err)
	}
	b, err := os.ReadFile(hot)
	if err != nil {
		t.Fatal(err)
	}
	l.hot = b
	go l.run()
	t.Cleanup(func() { l.halt() })
	return l
}

func (l *fsLoad) run() {
	defer close(l.done)
	rng := rand.New(rand.NewPCG(l.seed, 0x10ad))
	for i := 0; ; i++ {
		select {
		case <-l.stop:
			return
		default:
		}
		var err error
		if i%3 == 0 {
			err = l.rewriteHot(rng)
		} else {
			err = l.createFile(rng, i)
		}
		if err != nil {
			l.mu.Lock()
			l.err = fmt.Errorf("%s: %w", l.name, err)
			l.mu.Unlock()
			return
		}
	}
}

// loadFiles bounds the files a load keeps (names are reused, oldest
// first), so that however long it runs it never fills its file system.
const loadFiles = 256

// createFile writes a new file, fsyncs it and its directory: acknowledged.
// The name's previous file, if any, goes first.
func (l *fsLoad) createFile(rng *rand.Rand, i int) error {
	dir := filepath.Join(l.dir, fmt.Sprintf("d%02d", i%8))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	rel := filepath.Join(filepath.Base(dir), fmt.Sprintf("f%d-%03d", l.seed%1000, i%loadFiles))
	l.mu.Lock()
	delete(l.acked, rel)
	l.mu.Unlock()
	if err := os.Remove(filepath.Join(l.dir, rel)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	sum, err := writeSynced(filepath.Join(l.dir, rel), l.seed, uint64(i), rng.Int64N(128*kib))
	if err == nil {
		err = fsyncPath(dir)
	}
	if err != nil {
		return err
	}
	l.mu.Lock()
	l.acked[rel] = sum
	l.written++
	l.mu.Unlock()
	return nil
}

// rewriteHot overwrites part of the hot file in place and fdatasyncs.
func (l *fsLoad) rewriteHot(rng *rand.Rand) error {
	f, err := os.OpenFile(filepath.Join(l.dir, "hot"), os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	off := rng.Int64N(hotSize - 8192)
	p := make([]byte, 1+rng.IntN(8192))
	for i := range p {
		p[i] = byte(rng.Uint32())
	}
	if _, err := f.WriteAt(p, off); err != nil {
		return err
	}
	if err := f.Sync(); err != nil {
		return err
	}
	l.mu.Lock()
	copy(l.hot[off:], p)
	l.written++
	l.mu.Unlock()
	return nil
}

// progress is the number of acknowledged operations so far.
func (l *fsLoad) progress() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.written
}

// failed is the error the load saw, if any.
func (l *fsLoad) failed() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.err
}

// halt stops the load and returns its error, if it saw one.
func (l *fsLoad) halt() error {
	select {
	case <-l.stop:
	default:
		close(l.stop)
	}
	<-l.done
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.err
}

// check verifies every acknowledged file and the hot file under dir.
func (l *fsLoad) check(t *testing.T, dir string) {
	t.Helper()
	l.mu.Lock()
	defer l.mu.Unlock()
	for rel, sum := range l.acked {
		if got := fileSHA256(t, filepath.Join(dir, rel)); got != sum {
			t.Errorf("%s: acknowledged file %s: sha256 %s, want %s", l.name, rel, got, sum)
		}
	}
	got, err := os.ReadFile(filepath.Join(dir, "hot"))
	if err != nil || !bytes.Equal(got, l.hot) {
		t.Errorf("%s: the file rewritten in place differs from what was acknowledged (%v)", l.name, err)
	}
}

// waitProgress waits until the load acknowledged n more operations.
func (l *fsLoad) waitProgress(t *testing.T, n int, what string) {
	t.Helper()
	want := l.progress() + n
	for deadline := time.Now().Add(cmdTimeout); l.progress() < want; time.Sleep(5 * time.Millisecond) {
		if err := l.failed(); err != nil {
			t.Fatalf("%s: the load saw an error: %v", what, err)
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: the load made no progress for %v", what, cmdTimeout)
		}
	}
}

// killServer SIGKILLs the daemon's server alone, by PID, and waits until
// another serves: the supervisor takes the mount over with a new one.
func (d *daemon) killServer(t testing.TB) (took time.Duration) {
	t.Helper()
	pid := d.serverPID()
	if pid == 0 {
		t.Fatal("harness: no server to kill")
	}
	fmt.Fprintf(d.log, "----- harness: kill -9 %d (the server alone)\n", pid)
	start := time.Now()
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatalf("kill -9 %d: %v", pid, err)
	}
	d.waitNewServer(t, pid)
	return time.Since(start)
}

// waitNewServer waits until a server other than old serves the socket.
func (d *daemon) waitNewServer(t testing.TB, old int) {
	t.Helper()
	for deadline := time.Now().Add(readyTimeout); ; time.Sleep(10 * time.Millisecond) {
		if !d.running() {
			t.Fatalf("the supervisor exited: %v", exitString(d.err))
		}
		if pid := d.serverPID(); pid != 0 && pid != old {
			if r := run(10*time.Second, d.environ(), cowvolBin, "--socket", d.Socket, "describe-volumes"); r.Code == 0 {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no new server within %v of the old one's end", readyTimeout)
		}
	}
}

// takeoverTrials is how many server kills TestServerCrashUnderLoad makes.
func takeoverTrials(t *testing.T) int {
	n := 20
	if s := os.Getenv("COWVOL_TAKEOVER_TRIALS"); s != "" {
		var err error
		if n, err = strconv.Atoi(s); err != nil || n < 1 {
			t.Fatalf("COWVOL_TAKEOVER_TRIALS=%q: want a positive number", s)
		}
	}
	return n
}

// crashMoment is what a trial's kill lands on.
type crashMoment int

const (
	crashAnywhere crashMoment = iota
	crashInCreateSnapshot
	crashMidFlush
	crashInHydration
	crashMoments
)

func (c crashMoment) String() string {
	return [...]string{"anywhere", "during CreateSnapshot", "mid-flush", "during hydration"}[c]
}

// Volumes outlive the server: ext4 on two volumes under fsync'd load, the
// server killed with -9 again and again (at random moments, during a
// CreateSnapshot, in the middle of a flush, while a restored volume
// hydrates), the supervisor starting another each time: no writer ever sees
// an error, every acknowledged write is there, e2fsck -fn finds both file
// systems clean, and every snapshot and restored volume holds what it must.
func TestServerCrashUnderLoad(t *testing.T) {
	requirePrereqs(t)
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, 0xc4a5))
	d := startDaemon(t)
	var loads []*fsLoad
	var mounts []*fsMount
	var vols []volume
	for i := range 2 {
		vol := d.createVolume(t, "256MiB")
		lo := attachLoop(t, d.volumePath(vol.VolumeId))
		mkfsExt4(t, lo.Dev)
		m := mountDev(t, lo.Dev, t.TempDir())
		vols, mounts = append(vols, vol), append(mounts, m)
		loads = append(loads, startLoad(t, fmt.Sprintf("fs%d", i), m.Dir, seed+uint64(i)))
	}
	// A snapshot to restore from, for the hydration trials.
	base := d.createSnapshot(t, vols[1].VolumeId)
	d.waitSnapshotCompleted(t, base.SnapshotId)
	baseSum := fileSHA256(t, d.snapshotPath(base.SnapshotId))

	trials := takeoverTrials(t)
	var stalls []time.Duration
	for i := range trials {
		moment := crashMoment(i % int(crashMoments))
		loads[0].waitProgress(t, 1+rng.IntN(20), "before the kill")
		var took time.Duration
		switch moment {
		case crashInCreateSnapshot:
			started := make(chan struct{})
			go func() {
				close(started)
				d.cli(t, "create-snapshot", "--volume-id", vols[i%2].VolumeId) // may die with the server
			}()
			<-started
			took = d.killServer(t)
		case crashMidFlush:
			s := d.createSnapshot(t, vols[i%2].VolumeId)
			waitFlushing(t, d, s.SnapshotId)
			took = d.killServer(t)
		case crashInHydration:
			var rv volume
			d.mustJSON(t, d.mustCLI(t, "create-volume", "--snapshot-id", base.SnapshotId), &rv)
			read := make(chan string, 1)
			go func() { read <- fileSHA256(t, d.volumePath(rv.VolumeId)) }()
			took = d.killServer(t)
			if got := <-read; got != baseSum {
				t.Fatalf("trial %d: the volume restored during the kill reads %s, want %s", i, got, baseSum)
			}
			d.mustCLI(t, "delete-volume", "--volume-id", rv.VolumeId)
		default:
			took = d.killServer(t)
		}
		stalls = append(stalls, took)
		for _, l := range loads {
			l.waitProgress(t, 3, fmt.Sprintf("trial %d (%s): after the takeover", i, moment))
		}
		t.Logf("trial %d: killed the server %s; a new one served after %v", i, moment, took.Round(time.Millisecond))
	}
	for _, l := range loads {
		if err := l.halt(); err != nil {
			t.Fatalf("the load saw an error: %v", err)
		}
		l.check(t, l.dir)
	}
	t.Logf("%d kills; takeover took %v at most", trials, maxDuration(stalls))

	step(t, "every snapshot taken meanwhile completes", func(t *testing.T) {
		for _, s := range d.describeSnapshots(t) {
			d.waitSnapshotCompleted(t, s.SnapshotId)
		}
	})
	step(t, "after unmount, e2fsck -fn is clean and every acknowledged write is there", func(t *testing.T) {
		for i, m := range mounts {
			m.unmount(t)
			e2fsckClean(t, m.Dev)
			m2 := mountDev(t, m.Dev, t.TempDir())
			loads[i].check(t, m2.Dir)
			m2.unmount(t)
		}
	})
}

// waitFlushing waits until snapshot id's flush is under way (or over).
func waitFlushing(t *testing.T, d *daemon, id string) {
	t.Helper()
	for deadline := time.Now().Add(cmdTimeout); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
		s := d.describeSnapshots(t, "--snapshot-ids", id)[0]
		if s.State != "pending" || strings.TrimSuffix(s.Progress, "%") != "0" {
			return
		}
	}
	t.Fatalf("snapshot %s did not start flushing", id)
}

func maxDuration(ds []time.Duration) time.Duration {
	var m time.Duration
	for _, d := range ds {
		m = max(m, d)
	}
	return m
}

// upgradeServer has the daemon upgrade (SIGHUP: the server hands over, the
// supervisor re-executes its binary and starts a new server) and waits
// until the new server serves.
func (d *daemon) upgradeServer(t testing.TB) (took time.Duration) {
	t.Helper()
	pid := d.serverPID()
	start := time.Now()
	d.signal(t, syscall.SIGHUP)
	d.waitNewServer(t, pid)
	return time.Since(start)
}

// Graceful upgrades under load: the binary replaced by another build and
// the daemon told to upgrade (SIGHUP), again and again, while ext4 on a
// volume takes fsync'd writes: no writer sees an error, nothing is lost,
// and the new binary serves.
func TestGracefulUpgradesUnderLoad(t *testing.T) {
	requirePrereqs(t)
	bin := installedBinary(t)
	d := newDaemon(t)
	d.bin = bin
	d.start(t)
	d.waitReady(t)
	vol := d.createVolume(t, "256MiB")
	lo := attachLoop(t, d.volumePath(vol.VolumeId))
	mkfsExt4(t, lo.Dev)
	m := mountDev(t, lo.Dev, t.TempDir())
	load := startLoad(t, "fs", m.Dir, uint64(time.Now().UnixNano()))
	supervisor := d.pid()
	var took []time.Duration
	for i := range takeoverTrials(t) {
		load.waitProgress(t, 5, fmt.Sprintf("before upgrade %d", i))
		reinstall(t, bin)
		took = append(took, d.upgradeServer(t))
		if d.pid() != supervisor || !d.running() {
			t.Fatalf("upgrade %d: the supervisor's pid changed or it exited", i)
		}
	}
	load.waitProgress(t, 5, "after the upgrades")
	if err := load.halt(); err != nil {
		t.Fatalf("the load saw an error: %v", err)
	}
	t.Logf("%d upgrades; each took %v at most", len(took), maxDuration(took))
	if n := strings.Count(d.output(), "upgraded: took over the mount"); n != len(took) {
		t.Fatalf("%d upgrades logged, want %d", n, len(took))
	}
	load.check(t, m.Dir)
	m.unmount(t)
	e2fsckClean(t, lo.Dev)
}

// installedBinary copies the cowvol binary under test to a directory of the
// test's, as `make install` would: the daemon runs that copy, and an
// upgrade replaces it (reinstall).
func installedBinary(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(dir, "cowvol")
	reinstall(t, bin)
	return bin
}

// reinstall puts a fresh copy of the binary under test at bin, replacing
// the file by rename as a package manager does.
func reinstall(t *testing.T, bin string) {
	t.Helper()
	b, err := os.ReadFile(cowvolBin)
	if err != nil {
		t.Fatal(err)
	}
	tmp := bin + ".new"
	if err := os.WriteFile(tmp, b, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, bin); err != nil {
		t.Fatal(err)
	}
}

// After a takeover the server knows what its predecessor knew: an attached
// volume is in use (DeleteVolume refuses it), and everything else works as
// before: create, write, snapshot, restore, delete.
func TestTakeoverKeepsVolumesInUse(t *testing.T) {
	requirePrereqs(t)
	d := startDaemon(t)
	vol := d.createVolume(t, "64MiB")
	lo := attachLoop(t, d.volumePath(vol.VolumeId))
	fillVolume(t, lo.Dev, 3, 8*mib)
	sum := fileSHA256(t, lo.Dev)
	for _, how := range []string{"crash", "upgrade"} {
		step(t, "after the server's "+how+", the attached volume is still in use", func(t *testing.T) {
			if how == "crash" {
				d.killServer(t)
			} else {
				d.upgradeServer(t)
			}
			_, stderr, code := d.cli(t, "delete-volume", "--volume-id", vol.VolumeId)
			if code == 0 || !strings.Contains(stderr, "VolumeInUse") {
				t.Fatalf("delete-volume of an attached volume after a %s: exit %d, %s", how, code, stderr)
			}
			if v := d.describeVolume(t, vol.VolumeId); v.State != "in-use" {
				t.Fatalf("state %s, want in-use", v.State)
			}
			if got := fileSHA256(t, lo.Dev); got != sum {
				t.Fatalf("the attached volume reads %s, want %s", got, sum)
			}
		})
	}
	step(t, "create, write, snapshot, restore and delete work as before", func(t *testing.T) {
		v2 := d.createVolume(t, "64MiB")
		fillVolume(t, d.volumePath(v2.VolumeId), 4, 4*mib)
		want := fileSHA256(t, d.volumePath(v2.VolumeId))
		s := d.createSnapshot(t, v2.VolumeId)
		d.waitSnapshotCompleted(t, s.SnapshotId)
		var rv volume
		d.mustJSON(t, d.mustCLI(t, "create-volume", "--snapshot-id", s.SnapshotId), &rv)
		if got := fileSHA256(t, d.volumePath(rv.VolumeId)); got != want {
			t.Fatalf("restored volume %s, want %s", got, want)
		}
		for _, id := range []string{rv.VolumeId, v2.VolumeId} {
			d.mustCLI(t, "delete-volume", "--volume-id", id)
		}
		d.mustCLI(t, "delete-snapshot", "--snapshot-id", s.SnapshotId)
	})
	step(t, "detached, the volume can be deleted", func(t *testing.T) {
		lo.detach(t)
		d.mustCLI(t, "delete-volume", "--volume-id", vol.VolumeId)
	})
}

// A server that cannot start any more (its keyring became unreadable to it)
// is restarted a few times, then the supervisor gives up: it unmounts
// (lazily: a file system on a volume gets I/O errors instead of waiting
// for ever) and exits non-zero, saying why.
func TestSupervisorGivesUpOnCrashLoop(t *testing.T) {
	requirePrereqs(t)
	d := startDaemon(t)
	d.createVolume(t, "64MiB")
	if err := os.Chmod(d.Keyring, 0o777); err != nil { // the server refuses such a keyring
		t.Fatal(err)
	}
	t.Cleanup(func() { os.Chmod(d.Keyring, 0o700) })
	d.killServer0(t)
	err, exited := d.waitExit(2 * time.Minute)
	if !exited || err == nil {
		t.Fatalf("the supervisor after a crash loop: exited %v, %v; want a non-zero exit", exited, exitString(err))
	}
	out := d.output()
	if !strings.Contains(out, "giving up") || !strings.Contains(out, "failed 5 times within") {
		t.Errorf("the supervisor did not say it gave up on a crash loop:\n%s", d.logTail(20))
	}
	if isMountpoint(t, d.MountDir) {
		t.Errorf("%s is still mounted after the supervisor gave up", d.MountDir)
	}
}

// killServer0 SIGKILLs the server without waiting for another.
func (d *daemon) killServer0(t testing.TB) {
	t.Helper()
	pid := d.serverPID()
	if pid == 0 {
		t.Fatal("harness: no server to kill")
	}
	fmt.Fprintf(d.log, "----- harness: kill -9 %d (the server alone)\n", pid)
	syscall.Kill(pid, syscall.SIGKILL)
}

// kill -9 of the supervisor alone: the server goes on serving; a daemon
// started on the same data dir meanwhile refuses (the data dir is in use)
// and disturbs nothing; the server, stopped with SIGTERM, unmounts
// cleanly; the next start is an ordinary one.
func TestSupervisorKilledAlone(t *testing.T) {
	requirePrereqs(t)
	d := startDaemon(t)
	vol := d.createVolume(t, "64MiB")
	fillVolume(t, d.volumePath(vol.VolumeId), 5, 4*mib)
	sum := fileSHA256(t, d.volumePath(vol.VolumeId))
	server := d.serverPID()
	step(t, "kill -9 the supervisor: the server goes on serving", func(t *testing.T) {
		d.signal(t, syscall.SIGKILL)
		if _, ok := d.waitExit(stopTimeout); !ok {
			t.Fatal("the supervisor survived SIGKILL")
		}
		d.describeVolume(t, vol.VolumeId)
		if got := fileSHA256(t, d.volumePath(vol.VolumeId)); got != sum {
			t.Fatalf("volume reads %s, want %s", got, sum)
		}
	})
	step(t, "a second daemon on the data dir refuses and disturbs nothing", func(t *testing.T) {
		d2 := newDaemon(t, withDataDir(d.DataDir))
		d2.start(t)
		err, exited := d2.waitExit(15 * time.Second)
		if !exited || err == nil {
			t.Fatalf("a second daemon: exited %v, %v; want a refusal", exited, exitString(err))
		}
		if !strings.Contains(d2.output(), "in use") {
			t.Errorf("the refusal does not say the data dir is in use:\n%s", d2.output())
		}
		d.describeVolume(t, vol.VolumeId)
	})
	step(t, "SIGTERM to the server: it unmounts and exits", func(t *testing.T) {
		syscall.Kill(server, syscall.SIGTERM)
		if !waitGone(server, stopTimeout) {
			t.Fatalf("server %d still there %v after SIGTERM", server, stopTimeout)
		}
		if isMountpoint(t, d.MountDir) {
			t.Fatalf("%s still mounted", d.MountDir)
		}
	})
	step(t, "the next start serves the volume as it was", func(t *testing.T) {
		d.restart(t)
		if got := fileSHA256(t, d.volumePath(vol.VolumeId)); got != sum {
			t.Fatalf("volume reads %s, want %s", got, sum)
		}
	})
}

// Signals to the supervisor in any order end well: a stop while the server
// is starting waits for it, a stop in the middle of an upgrade lets the
// upgrade finish and then stops, an upgrade asked while the server starts
// is refused; each daemon ends with exit 0 and nothing mounted. The server
// is held while it starts by an injection point (COWVOL_TEST_HOLD_SERVER).
func TestSupervisorSignalsInAnyOrder(t *testing.T) {
	requirePrereqs(t)
	cases := []struct {
		name string
		send func(t *testing.T, d *daemon, release func())
	}{
		{"stop while the server starts", func(t *testing.T, d *daemon, release func()) {
			d.signal(t, syscall.SIGTERM)
			release()
		}},
		{"upgrade while the server starts (refused), then stop", func(t *testing.T, d *daemon, release func()) {
			d.signal(t, syscall.SIGHUP)
			release()
			d.waitReady(t)
			d.signal(t, syscall.SIGTERM)
		}},
		{"upgrade, and stop in the middle of it", func(t *testing.T, d *daemon, release func()) {
			release()
			d.waitReady(t)
			d.signal(t, syscall.SIGHUP)
			d.signal(t, syscall.SIGTERM)
		}},
		{"two upgrades in a row, then stop", func(t *testing.T, d *daemon, release func()) {
			release()
			d.waitReady(t)
			d.signal(t, syscall.SIGHUP)
			d.signal(t, syscall.SIGHUP)
			d.waitReady(t)
			d.signal(t, syscall.SIGTERM)
		}},
	}
	for _, c := range cases {
		step(t, c.name, func(t *testing.T) {
			hold := t.TempDir()
			d := newDaemon(t, withEnv("COWVOL_TEST_HOLD_SERVER="+hold))
			d.start(t)
			waitFor(t, "the server held as it starts", func() bool {
				_, err := os.Stat(filepath.Join(hold, "held"))
				return err == nil
			})
			c.send(t, d, func() { releaseHeld(t, hold) })
			err, exited := d.waitExit(stopTimeout)
			if !exited || err != nil {
				t.Fatalf("the daemon: exited %v, %v; want exit 0\n%s", exited, exitString(err), d.logTail(30))
			}
			if isMountpoint(t, d.MountDir) {
				t.Fatalf("%s still mounted", d.MountDir)
			}
		})
	}
}

// releaseHeld lets every server held at the injection point go on, and
// those started later pass it.
func releaseHeld(t *testing.T, dir string) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(dir, "release"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
}
