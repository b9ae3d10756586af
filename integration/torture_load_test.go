package integration

import (
	"bytes"
	"maps"
	"math/rand/v2"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// Many volumes and snapshots at once: a writer per volume through its
// FUSE file, snapshots taken concurrently from several clients, and a
// prober timing describe-volumes on the control socket meanwhile. No call
// may hang (every CLI call has a timeout), every snapshot ends completed
// with the content of its call, every volume holds what was written. The
// daemon's peak RSS and the prober's latencies are logged, not asserted.
//
// Short form (make test): 10 volumes, 100 snapshots; COWVOL_TORTURE_LONG=1
// (make torture): 50 volumes, 500 snapshots.
func TestTortureLoad(t *testing.T) {
	requirePrereqs(t)
	nVols, nSnaps := 10, 100
	if os.Getenv("COWVOL_TORTURE_LONG") == "1" {
		nVols, nSnaps = 50, 500
	}
	const volSize = 16 * mib
	const pages = uint64(volSize / torturePage)
	d := startDaemon(t)

	type vol struct {
		id    string
		gate  sync.RWMutex // held by the writer per write; exclusively at a snapshot's call
		mu    sync.Mutex   // guards model
		model map[uint64]uint64
	}
	vols := make([]*vol, nVols)
	for i := range vols {
		vols[i] = &vol{id: d.createVolume(t, "16MiB").VolumeId, model: map[uint64]uint64{}}
	}

	stop := make(chan struct{})
	var writers sync.WaitGroup
	for i, v := range vols {
		writers.Add(1)
		go func() {
			defer writers.Done()
			f, err := os.OpenFile(d.volumePath(v.id), os.O_RDWR, 0)
			if err != nil {
				t.Error(err)
				return
			}
			defer f.Close()
			rng := rand.New(rand.NewPCG(uint64(i), 0x10ad))
			buf := make([]byte, 16*torturePage)
			for ver := uint64(1); ; ver++ {
				select {
				case <-stop:
					if err := f.Sync(); err != nil {
						t.Errorf("%s: fsync: %v", v.id, err)
					}
					return
				default:
				}
				n := uint64(1 + rng.IntN(16))
				pg := rng.Uint64N(pages - n + 1)
				for j := range n {
					pageContent(buf[j*torturePage:(j+1)*torturePage], uint64(i)<<32|(pg+j), ver)
				}
				v.gate.RLock()
				_, err := f.WriteAt(buf[:n*torturePage], int64(pg*torturePage))
				if err == nil {
					v.mu.Lock()
					for j := range n {
						v.model[pg+j] = ver
					}
					v.mu.Unlock()
				}
				v.gate.RUnlock()
				if err != nil {
					t.Errorf("%s: write: %v", v.id, err)
					return
				}
				if ver%64 == 0 {
					if err := f.Sync(); err != nil {
						t.Errorf("%s: fsync: %v", v.id, err)
						return
					}
				}
			}
		}()
	}

	// The prober: how long the control socket takes while all this runs.
	var lat []time.Duration
	proberDone := make(chan struct{})
	go func() {
		defer close(proberDone)
		for {
			select {
			case <-stop:
				return
			case <-time.After(100 * time.Millisecond):
			}
			start := time.Now()
			r := run(cliTimeout, d.environ(), cowvolBin, "--socket", d.Socket, "describe-volumes")
			if r.Code != 0 {
				t.Errorf("describe-volumes under load: %v", r)
				return
			}
			lat = append(lat, time.Since(start))
		}
	}()

	type taken struct {
		id      string
		vol     int
		content map[uint64]uint64
	}
	var (
		snapsMu sync.Mutex
		snaps   []taken
		retries int
	)
	start := time.Now()
	var clients sync.WaitGroup
	const nClients = 4
	for c := range nClients {
		clients.Add(1)
		go func() {
			defer clients.Done()
			for k := c; k < nSnaps; k += nClients {
				i := k % nVols
				v := vols[i]
				for {
					v.gate.Lock() // no write in flight at the call
					v.mu.Lock()
					content := maps.Clone(v.model)
					v.mu.Unlock()
					stdout, stderr, code := d.cli(t, "create-snapshot", "--volume-id", v.id)
					v.gate.Unlock()
					if code != 0 && strings.Contains(stderr, "ConcurrentSnapshotLimitExceeded") {
						snapsMu.Lock()
						retries++
						snapsMu.Unlock()
						time.Sleep(200 * time.Millisecond)
						continue
					}
					if code != 0 {
						t.Errorf("create-snapshot %s: exit %d: %s", v.id, code, stderr)
						return
					}
					var s snapshot
					d.mustJSON(t, stdout, &s)
					snapsMu.Lock()
					snaps = append(snaps, taken{s.SnapshotId, i, content})
					snapsMu.Unlock()
					break
				}
			}
		}()
	}
	clients.Wait()
	t.Logf("%d snapshots of %d volumes taken in %v under writes (%d calls refused with ConcurrentSnapshotLimitExceeded, retried)",
		len(snaps), nVols, time.Since(start).Round(time.Millisecond), retries)
	close(stop)
	writers.Wait()
	<-proberDone
	if t.Failed() {
		t.FailNow()
	}
	slices.Sort(lat)
	if len(lat) > 0 {
		t.Logf("describe-volumes under load: %d calls, median %v, p99 %v, max %v", len(lat),
			lat[len(lat)/2].Round(time.Millisecond), lat[len(lat)*99/100].Round(time.Millisecond), lat[len(lat)-1].Round(time.Millisecond))
	}

	step(t, "every snapshot completes", func(t *testing.T) {
		deadline := time.Now().Add(10 * time.Minute)
		for {
			all := d.describeSnapshots(t)
			states := map[string]int{}
			for _, s := range all {
				states[s.State]++
			}
			if states["error"] > 0 {
				t.Fatalf("snapshots in state error: %v", states)
			}
			if states["completed"] == len(snaps) && len(all) == len(snaps) {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("after 10 minutes: %v of %d snapshots", states, len(snaps))
			}
			time.Sleep(time.Second)
		}
		t.Logf("all %d snapshots completed %v after the last call; daemon peak RSS %d MiB", len(snaps),
			time.Since(start).Round(time.Second), peakRSS(d.pid())>>20)
	})

	step(t, "every volume holds what was written", func(t *testing.T) {
		for i, v := range vols {
			checkVersions(t, d.volumePath(v.id), uint64(i), pages, v.model)
		}
	})

	step(t, "snapshots hold the content of their call (the newest and a random one per volume)", func(t *testing.T) {
		rng := rand.New(rand.NewPCG(1, 2))
		byVol := map[int][]taken{}
		for _, s := range snaps {
			byVol[s.vol] = append(byVol[s.vol], s)
		}
		checked := 0
		for i, ss := range byVol {
			for _, s := range []taken{ss[len(ss)-1], ss[rng.IntN(len(ss))]} {
				checkVersions(t, d.snapshotPath(s.id), uint64(i), pages, s.content)
				checked++
			}
		}
		t.Logf("%d snapshot files checked", checked)
	})
}

// checkVersions fails the test unless file's pages hold exactly the
// versions of content (pages of volume vol; absent pages zeros).
func checkVersions(t testing.TB, file string, vol, pages uint64, content map[uint64]uint64) {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	want := make([]byte, torturePage)
	bad := 0
	for pg := range pages {
		pageContent(want, vol<<32|pg, content[pg])
		if !bytes.Equal(b[pg*torturePage:(pg+1)*torturePage], want) {
			bad++
		}
	}
	if bad > 0 {
		t.Errorf("%s: %d of %d pages differ from what they should hold", file, bad, pages)
	}
}
