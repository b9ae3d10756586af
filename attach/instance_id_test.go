package attach

import (
	"regexp"
	"testing"
)

func TestInstanceIDOf(t *testing.T) {
	form := regexp.MustCompile(`^i-[0-9a-f]{17}$`)
	seen := map[string]string{}
	for _, mid := range []string{"3d1219c7c4c5404aaa1f6d2a48adfda4", "00000000000000000000000000000000", "x"} {
		id := instanceIDOf(mid)
		if !form.MatchString(id) {
			t.Errorf("instanceIDOf(%q) = %q, want i- and 17 hex digits", mid, id)
		}
		if id != instanceIDOf(mid) {
			t.Errorf("instanceIDOf(%q) is not stable", mid)
		}
		if other, dup := seen[id]; dup {
			t.Errorf("%q and %q share instance ID %s", mid, other, id)
		}
		seen[id] = mid
	}
	// The documented derivation, pinned: "cowvol instance " + machine ID.
	if got, want := instanceIDOf("3d1219c7c4c5404aaa1f6d2a48adfda4"), "i-7a602f1ccf5cb8e37"; got != want {
		t.Errorf("instanceIDOf = %s, want %s", got, want)
	}
}

func TestLoopDeviceNames(t *testing.T) {
	for dev, want := range map[string]bool{
		"/dev/loop0": true, "/dev/loop12": true, "/dev/loop": false, "/dev/loop-control": false,
		"/dev/sdf": false, "loop0": false, "/dev/loop1a": false,
	} {
		if got := IsLoopDevice(dev); got != want {
			t.Errorf("IsLoopDevice(%q) = %v, want %v", dev, got, want)
		}
	}
	if n := loopNumber("/dev/loop123"); n != 123 {
		t.Errorf("loopNumber = %d", n)
	}
}
