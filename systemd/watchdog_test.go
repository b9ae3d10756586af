package systemd

import (
	"context"
	"errors"
	"testing"
	"time"
)

// TestWatchdogInterval checks WATCHDOG_USEC and WATCHDOG_PID parsing.
func TestWatchdogInterval(t *testing.T) {
	const pid = 4242
	tests := []struct {
		name string
		env  map[string]string
		want time.Duration
		ok   bool
	}{
		{"no watchdog", map[string]string{}, 0, false},
		{"for us by pid", map[string]string{"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "4242"}, 30 * time.Second, true},
		{"no pid", map[string]string{"WATCHDOG_USEC": "1500"}, 1500 * time.Microsecond, true},
		{"for another pid", map[string]string{"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "4243"}, 0, false},
		{"pid not a number", map[string]string{"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "x"}, 0, false},
		{"zero", map[string]string{"WATCHDOG_USEC": "0"}, 0, false},
		{"negative", map[string]string{"WATCHDOG_USEC": "-5"}, 0, false},
		{"not a number", map[string]string{"WATCHDOG_USEC": "30s"}, 0, false},
		{"overflow", map[string]string{"WATCHDOG_USEC": "18446744073709551615"}, 0, false},
		{"largest", map[string]string{"WATCHDOG_USEC": "9223372036854775"}, 9223372036854775 * time.Microsecond, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			lookup := func(k string) (string, bool) { v, ok := tt.env[k]; return v, ok }
			got, ok := watchdogInterval(lookup, pid)
			if got != tt.want || ok != tt.ok {
				t.Errorf("got %v, %v; want %v, %v", got, ok, tt.want, tt.ok)
			}
		})
	}
}

// TestWatchdogPings: Watchdog pings at once and on every tick until its
// context ends, and skips the pings its alive function refuses.
func TestWatchdogPings(t *testing.T) {
	m := newFakeManager(t, false)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	answers := make(chan bool)
	asked := 0
	alive := func() bool {
		asked++
		select {
		case a := <-answers:
			return a
		case <-ctx.Done():
			return false
		}
	}
	done := make(chan error, 1)
	go func() { done <- Watchdog(ctx, 2*time.Millisecond, alive) }()

	for _, a := range []bool{true, false, false, true, true, false} {
		answers <- a
		if a {
			if got, _ := m.recv(); got != "WATCHDOG=1" {
				t.Fatalf("sent %q", got)
			}
		}
	}
	answers <- true // the refused pings sent nothing: the next datagram is this one
	if got, _ := m.recv(); got != "WATCHDOG=1" {
		t.Fatalf("sent %q", got)
	}
	m.expectNothing()
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Errorf("Watchdog returned %v, want context.Canceled", err)
	}
	if asked < 7 {
		t.Errorf("alive asked %d times, want at least 7", asked)
	}
}

// TestWatchdogNoAlive: without an alive function every tick pings.
func TestWatchdogNoAlive(t *testing.T) {
	m := newFakeManager(t, true)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- Watchdog(ctx, time.Millisecond, nil) }()
	for range 3 {
		if got, _ := m.recv(); got != "WATCHDOG=1" {
			t.Fatalf("sent %q", got)
		}
	}
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Errorf("Watchdog returned %v, want context.Canceled", err)
	}
}

// TestWatchdogErrors: a bad interval or a dead context return at once;
// a failing ping is reported when Watchdog ends.
func TestWatchdogErrors(t *testing.T) {
	if err := Watchdog(context.Background(), 0, nil); err == nil {
		t.Error("interval 0: no error")
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := Watchdog(ctx, time.Second, nil); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled context: %v", err)
	}

	t.Setenv(EnvNotifySocket, t.TempDir()+"/gone")
	ctx, cancel = context.WithCancel(context.Background())
	pinged := make(chan struct{})
	alive := func() bool {
		select {
		case pinged <- struct{}{}:
		case <-ctx.Done():
		}
		return true
	}
	done := make(chan error, 1)
	go func() { done <- Watchdog(ctx, time.Millisecond, alive) }()
	<-pinged
	<-pinged // the first ping has failed by now
	cancel()
	err := <-done
	if !errors.Is(err, context.Canceled) || err.Error() == context.Canceled.Error() {
		t.Errorf("Watchdog returned %v, want context.Canceled with the ping's error", err)
	}
}
