package integration

import (
	"fmt"
	"io"
	"math"
	"net/url"
	"os/exec"
	"sort"
	"sync"
	"testing"
	"time"
)

// forkGiB is how much a fork figure's volume has written, unsynced, when
// it is snapshotted.
const forkGiB = 4

// forkIdleVolumes are the idle volumes whose CreateSnapshot is timed
// during another volume's fork; each takes at most forkIdleSnapshots per
// round (MaxPendingSnapshots is 5, and their flushes wait behind the big
// one's).
const (
	forkIdleVolumes   = 3
	forkIdleSnapshots = 4
)

// BenchmarkFork runs only the fork figures of `make bench`:
// go test ./integration -run '^$' -bench Fork -benchtime 1x.
// COWVOL_BENCH_FORK_ROUNDS sets the rounds (default 5).
func BenchmarkFork(b *testing.B) {
	if _, err := exec.LookPath("fio"); err != nil {
		b.Fatal("fio is not installed (make bench installs it)")
	}
	report := &benchReport{Machine: machine(), Figures: map[string]float64{}}
	d := startDaemon(b)
	forkFigures(b, d, report)
	for _, name := range report.order {
		fmt.Printf("%-64s %10.2f\n", name, report.Figures[name])
	}
}

// forkFigures times CreateSnapshot over the socket right after forkGiB GiB
// of writes that nobody synced, and, while that call runs, the latency of
// DescribeSnapshots, DescribeVolumes and another, idle volume's
// CreateSnapshot (issue 19). Each round writes the volume afresh (fio
// O_DIRECT through FUSE, no fsync, so the daemon's data file holds the
// writes in the page cache and its map holds them unsynced), then forks it
// with a prober running; the previous round's flush is waited for first.
func forkFigures(b *testing.B, d *daemon, r *benchReport) {
	rounds := envInt("COWVOL_BENCH_FORK_ROUNDS", 5)
	api := newEC2(d.Socket)
	big := d.createVolume(b, fmt.Sprintf("%dGiB", forkGiB+1))
	var idle []string
	for range forkIdleVolumes {
		idle = append(idle, d.createVolume(b, "1GiB").VolumeId)
	}
	var own, descSnaps, descVols, other []float64
	for range rounds {
		writeUnsynced(b, d.volumePath(big.VolumeId), forkGiB)
		p := startForkProber(api, idle)
		id, lat := api.createSnapshot(b, big.VolumeId)
		res := p.stop()
		if res.err != nil {
			b.Fatal(res.err)
		}
		own = append(own, lat)
		descSnaps = append(descSnaps, res.descSnaps...)
		descVols = append(descVols, res.descVols...)
		other = append(other, res.other...)
		api.waitCompleted(b, id)
		for _, s := range res.snaps {
			api.waitCompleted(b, s)
		}
	}
	name := fmt.Sprintf("%d GiB just written", forkGiB)
	r.add("fork: CreateSnapshot ms p50 ("+name+")", percentile(own, 0.5))
	r.add("fork: CreateSnapshot ms p99 ("+name+")", percentile(own, 0.99))
	during := fmt.Sprintf("during a fork, %d GiB dirty", forkGiB)
	for _, f := range []struct {
		what string
		lats []float64
	}{{"DescribeSnapshots", descSnaps}, {"DescribeVolumes", descVols}, {"other volume's CreateSnapshot", other}} {
		r.add(fmt.Sprintf("fork: %s ms p50 (%s)", f.what, during), percentile(f.lats, 0.5))
		r.add(fmt.Sprintf("fork: %s ms p99 (%s)", f.what, during), percentile(f.lats, 0.99))
		r.add(fmt.Sprintf("fork: %s calls (%s)", f.what, during), float64(len(f.lats)))
	}
}

// writeUnsynced writes gib GiB at the start of a volume file and syncs
// nothing: the daemon holds the writes in its data file's page cache and
// its unsynced map. The data repeats from call to call (fio's default
// seed), so the flushes after the forks find most chunks stored already
// and the store does not grow round by round.
func writeUnsynced(b *testing.B, file string, gib int) {
	out, err := exec.Command("fio", "--name=dirty", "--filename="+file, "--rw=write", "--bs=1M", "--iodepth=8",
		"--ioengine=libaio", "--direct=1", fmt.Sprintf("--size=%dG", gib)).CombinedOutput()
	if err != nil {
		b.Fatalf("write %s: %v\n%s", file, err, out)
	}
}

// forkProber calls DescribeSnapshots, DescribeVolumes and an idle
// volume's CreateSnapshot in turn, timing each, until stopped.
type forkProber struct {
	api  *ec2
	idle []string
	quit chan struct{}
	done chan forkProbes
}

// forkProbes are a prober's latencies (ms) and the snapshots it created.
type forkProbes struct {
	descSnaps, descVols, other []float64
	snaps                      []string
	err                        error
}

func startForkProber(api *ec2, idle []string) *forkProber {
	p := &forkProber{api: api, idle: idle, quit: make(chan struct{}), done: make(chan forkProbes, 1)}
	var started sync.WaitGroup
	started.Add(1)
	go p.run(&started)
	started.Wait()
	return p
}

// stop ends the prober (a call in flight completes and counts: it began
// during the fork) and returns what it measured.
func (p *forkProber) stop() forkProbes {
	close(p.quit)
	return <-p.done
}

func (p *forkProber) run(started *sync.WaitGroup) {
	var res forkProbes
	made := map[string]int{}
	started.Done()
	for i := 0; ; i++ {
		select {
		case <-p.quit:
			p.done <- res
			return
		default:
		}
		var err error
		switch i % 3 {
		case 0:
			res.descSnaps, err = p.timed(res.descSnaps, "DescribeSnapshots")
		case 1:
			res.descVols, err = p.timed(res.descVols, "DescribeVolumes")
		case 2:
			vol := p.idle[(i/3)%len(p.idle)]
			if made[vol] >= forkIdleSnapshots {
				continue
			}
			made[vol]++
			var body string
			t0 := time.Now()
			body, err = p.api.callErr("CreateSnapshot", "VolumeId", vol)
			res.other = append(res.other, ms(time.Since(t0)))
			res.snaps = append(res.snaps, xmlField(body, "snapshotId"))
		}
		if err != nil {
			res.err = err
			<-p.quit
			p.done <- res
			return
		}
	}
}

func (p *forkProber) timed(lats []float64, action string) ([]float64, error) {
	t0 := time.Now()
	_, err := p.api.callErr(action)
	return append(lats, ms(time.Since(t0))), err
}

// callErr is call for a goroutine that may not fail the benchmark.
func (e *ec2) callErr(action string, kv ...string) (string, error) {
	form := url.Values{"Action": {action}, "Version": {"2016-11-15"}}
	for i := 0; i+1 < len(kv); i += 2 {
		form.Set(kv[i], kv[i+1])
	}
	resp, err := e.c.PostForm("http://cowvol/", form)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		return "", fmt.Errorf("%s: HTTP %d: %s", action, resp.StatusCode, body)
	}
	return string(body), nil
}

// percentile is the nearest-rank p-th percentile of xs (0 for none).
func percentile(xs []float64, p float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := append([]float64(nil), xs...)
	sort.Float64s(s)
	i := int(math.Ceil(p*float64(len(s)))) - 1
	return s[max(i, 0)]
}
