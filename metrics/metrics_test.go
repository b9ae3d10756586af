package metrics

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/cowvol/cowvol/cow/snapstore"
	"github.com/cowvol/cowvol/fusefs"
)

func TestMeasuredStore(t *testing.T) {
	dir, err := snapstore.OpenDir(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	m := New("v0", "abc")
	st := m.WrapStore(dir, "regional")
	if snapstore.Underlying(st) != snapstore.Store(dir) {
		t.Fatalf("Underlying(wrapped) is not the dir store")
	}
	ctx := context.Background()
	steps := []struct {
		name string
		do   func() error
	}{
		{"put", func() error { return st.Put(ctx, "packs/ab/cd", make([]byte, 100)) }},
		{"put again", func() error { return st.Put(ctx, "snapshots/s/manifest", make([]byte, 7)) }},
		{"get", func() error { _, err := st.Get(ctx, "packs/ab/cd"); return err }},
		{"get missing", func() error {
			if _, err := st.Get(ctx, "packs/no/such"); !errors.Is(err, snapstore.ErrNotFound) {
				return errors.New("want ErrNotFound")
			}
			return nil
		}},
		{"a gc round's clock probe", func() error { return st.Put(ctx, "gc-clock/000000000000-01", nil) }},
		{"delete", func() error { return st.Delete(ctx, "packs/ab/cd") }},
	}
	for _, s := range steps {
		if err := s.do(); err != nil {
			t.Fatalf("%s: %v", s.name, err)
		}
	}
	sm := m.stores
	checks := []struct {
		name string
		got  float64
		want float64
	}{
		{"puts ok", testutil.ToFloat64(sm.requests.WithLabelValues("regional", "put", "ok")), 3},
		{"gc rounds", testutil.ToFloat64(m.gc.runs.WithLabelValues("regional")), 1},
		{"gc deleted packs", testutil.ToFloat64(m.gc.deleted.WithLabelValues("regional", "packs")), 1},
		{"gc freed bytes", testutil.ToFloat64(m.gc.freed.WithLabelValues("regional")), 100},
		{"gets ok", testutil.ToFloat64(sm.requests.WithLabelValues("regional", "get", "ok")), 1},
		{"gets not found", testutil.ToFloat64(sm.requests.WithLabelValues("regional", "get", "not_found")), 1},
		{"deletes ok", testutil.ToFloat64(sm.requests.WithLabelValues("regional", "delete", "ok")), 1},
		{"pack bytes written", testutil.ToFloat64(sm.written.WithLabelValues("regional", "packs")), 100},
		{"manifest bytes written", testutil.ToFloat64(sm.written.WithLabelValues("regional", "snapshots")), 7},
		{"bytes read", testutil.ToFloat64(sm.read.WithLabelValues("regional")), 100},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("%s: %v, want %v", c.name, c.got, c.want)
		}
	}
}

func TestOutcome(t *testing.T) {
	tests := []struct {
		err  error
		want string
	}{
		{nil, "ok"},
		{snapstore.ErrNotFound, "not_found"},
		{snapstore.ErrStoreFull, "full"},
		{context.DeadlineExceeded, "timeout"},
		{context.Canceled, "canceled"},
		{errors.New("boom"), "error"},
	}
	for _, tt := range tests {
		if got := outcome(tt.err); got != tt.want {
			t.Errorf("outcome(%v) = %q, want %q", tt.err, got, tt.want)
		}
	}
}

func TestIOObserver(t *testing.T) {
	m := New("v0", "abc")
	io := m.IO
	io.Begin()
	if got := testutil.ToFloat64(io.inFlight); got != 1 {
		t.Errorf("in flight %v, want 1", got)
	}
	io.End("vol-1", fusefs.OpWrite, 4096, time.Millisecond, false)
	io.Begin()
	io.End("vol-1", fusefs.OpWrite, 4096, time.Millisecond, true)
	io.Begin()
	io.End("", fusefs.OpRead, 10, time.Millisecond, false) // a snapshot file: not a volume's
	checks := []struct {
		name      string
		got, want float64
	}{
		{"in flight", testutil.ToFloat64(io.inFlight), 0},
		{"write requests", testutil.ToFloat64(io.requests.WithLabelValues("vol-1", "write")), 2},
		{"write errors", testutil.ToFloat64(io.errors.WithLabelValues("vol-1", "write")), 1},
		{"bytes of the successful write", testutil.ToFloat64(io.bytes.WithLabelValues("vol-1", "write")), 4096},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("%s: %v, want %v", c.name, c.got, c.want)
		}
	}
	io.VolumeRemoved("vol-1")
	if n := testutil.CollectAndCount(io, "cowvol_volume_requests_total"); n != 0 {
		t.Errorf("%d request series left after the volume was removed", n)
	}
	problems, err := testutil.GatherAndLint(m.Gatherer())
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("naming: %s: %s", p.Metric, p.Text)
	}
}
