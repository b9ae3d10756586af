package integration

import "testing"

// step runs one step of a user's session as a subtest named after what the
// user does, and stops the session (t.FailNow) if the step failed: later
// steps build on earlier ones.
//
// Resources a step acquires with t.Cleanup (loop devices, mounts) are
// released when the step ends; acquire session-long ones (the daemon) on the
// parent test before the first step.
func step(t *testing.T, name string, f func(t *testing.T)) {
	t.Helper()
	if !t.Run(name, f) {
		t.FailNow()
	}
}
