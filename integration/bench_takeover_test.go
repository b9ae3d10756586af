package integration

import (
	"fmt"
	"os"
	"sort"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// takeoverFigures measures the stall a qd1 writer (4 KiB O_DIRECT write +
// fdatasync, in a loop) sees when the server is killed (the supervisor
// starts another, which takes the mount over) and when the daemon upgrades
// (SIGHUP: the server hands over), with more than two million blocks
// mapped: the latency of the writes that straddle each event (max) and the
// 99th percentile of the writes in the 3 s after it, next to the same
// writer's before.
func takeoverFigures(b *testing.B, d *daemon, r *benchReport) {
	var big volume
	d.mustJSON(b, d.mustCLI(b, "create-volume", "--size", "9GiB", "--block-size", "4KiB"), &big)
	fill(b, d.volumePath(big.VolumeId), 8) // 2 097 152 blocks mapped
	vol := d.createVolume(b, "1GiB")
	w := startLatencyWriter(b, d.volumePath(vol.VolumeId))
	time.Sleep(3 * time.Second)
	before := w.since(time.Time{})
	for _, event := range []string{"crash", "upgrade"} {
		t0 := time.Now()
		if event == "crash" {
			d.killServer(b)
		} else {
			d.upgradeServer(b)
		}
		time.Sleep(3 * time.Second)
		lats := w.since(t0)
		r.add(fmt.Sprintf("takeover: %s stall max ms (2M+ blocks mapped)", event), ms(lats.max))
		r.add(fmt.Sprintf("takeover: %s p99 ms, 3 s after", event), ms(lats.p99))
	}
	w.stop()
	r.add("takeover: qd1 write+fsync p99 ms, before", ms(before.p99))
	r.add("takeover: qd1 write+fsync max ms, before", ms(before.max))
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// latencyWriter writes and fdatasyncs 4 KiB at a time, recording each
// write's start and latency.
type latencyWriter struct {
	mu    sync.Mutex
	ops   []latencyOp
	err   error
	stopc chan struct{}
	done  chan struct{}
}

type latencyOp struct {
	start time.Time
	took  time.Duration
}

type latencySummary struct{ max, p99 time.Duration }

func startLatencyWriter(b *testing.B, file string) *latencyWriter {
	fd, err := unix.Open(file, unix.O_WRONLY|unix.O_DIRECT, 0)
	if err != nil {
		b.Fatal(err)
	}
	w := &latencyWriter{stopc: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(w.done)
		defer unix.Close(fd)
		buf := alignedBuf(4096)
		for i := int64(0); ; i++ {
			select {
			case <-w.stopc:
				return
			default:
			}
			start := time.Now()
			_, err := unix.Pwrite(fd, buf, (i%4096)*4096)
			if err == nil {
				err = unix.Fdatasync(fd)
			}
			w.mu.Lock()
			w.ops = append(w.ops, latencyOp{start, time.Since(start)})
			if err != nil && w.err == nil {
				w.err = err
			}
			w.mu.Unlock()
		}
	}()
	b.Cleanup(w.stop)
	return w
}

func (w *latencyWriter) stop() {
	select {
	case <-w.stopc:
	default:
		close(w.stopc)
	}
	<-w.done
	if w.err != nil {
		fmt.Fprintf(os.Stderr, "the qd1 writer saw an error: %v\n", w.err)
	}
}

// since summarises the writes that ended after t: the longest, and the
// 99th percentile.
func (w *latencyWriter) since(t time.Time) latencySummary {
	w.mu.Lock()
	defer w.mu.Unlock()
	var lats []time.Duration
	for _, op := range w.ops {
		if op.start.Add(op.took).After(t) {
			lats = append(lats, op.took)
		}
	}
	if len(lats) == 0 {
		return latencySummary{}
	}
	sort.Slice(lats, func(i, j int) bool { return lats[i] < lats[j] })
	return latencySummary{max: lats[len(lats)-1], p99: lats[len(lats)*99/100]}
}

// BenchmarkTakeover is the takeover figures of `make bench` alone:
// go test ./integration -run '^$' -bench Takeover -benchtime 1x.
func BenchmarkTakeover(b *testing.B) {
	d := startDaemon(b)
	r := &benchReport{Machine: machine(), Figures: map[string]float64{}}
	takeoverFigures(b, d, r)
	for _, name := range r.order {
		fmt.Printf("%-52s %10.2f\n", name, r.Figures[name])
	}
}
