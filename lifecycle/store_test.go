package lifecycle

import (
	"os"
	"path/filepath"
	"testing"
	"time"
)

func TestStoreKeepsPoliciesAndProgress(t *testing.T) {
	dir := t.TempDir()
	clk := &clock{t: at("2026-01-01T10:00:00Z")}
	m, err := Open(dir, Limits{}, clk.now)
	if err != nil {
		t.Fatal(err)
	}
	p, err := m.Create(hourlyPolicy(3))
	if err != nil {
		t.Fatal(err)
	}
	key := runKey(p.ID, "hourly")
	if _, err := m.advance(p.ID, key, func(*runState) *runState {
		return &runState{Instant: at("2026-01-01T11:00:00Z"), Opened: at("2026-01-01T11:00:00Z")}
	}); err != nil {
		t.Fatal(err)
	}
	if err := m.markDone(p.ID, key, at("2026-01-01T11:00:00Z"), "vol-00000000000000001"); err != nil {
		t.Fatal(err)
	}
	m2, err := Open(dir, Limits{}, clk.now)
	if err != nil {
		t.Fatal(err)
	}
	got, err := m2.Get(p.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.Description != p.Description || got.Details.Schedules[0].RetainRule.Count != 3 || !got.Created.Equal(p.Created) {
		t.Fatalf("reopened policy %+v, want %+v", got, p)
	}
	rs := m2.st.Runs[key]
	if rs == nil || !rs.Instant.Equal(at("2026-01-01T11:00:00Z")) || len(rs.Done) != 1 {
		t.Fatalf("reopened progress %+v", rs)
	}
	if _, err := os.Stat(filepath.Join(dir, StateFile+".tmp")); !os.IsNotExist(err) {
		t.Fatalf("temporary file left: %v", err)
	}
}

func TestStoreRefusesDamage(t *testing.T) {
	for name, content := range map[string]string{
		"not json":    "{",
		"new version": `{"version": 2}`,
		"bad id":      `{"version": 1, "policies": [{"PolicyId": "x"}]}`,
		"null policy": `{"version": 1, "policies": [null]}`,
	} {
		dir := t.TempDir()
		if err := os.WriteFile(filepath.Join(dir, StateFile), []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		if _, err := Open(dir, Limits{}, time.Now); err == nil {
			t.Errorf("%s: opened", name)
		}
	}
}

func FuzzDecodeState(f *testing.F) {
	f.Add([]byte(`{"version":1,"policies":[{"PolicyId":"policy-0123456789abcdef0","State":"ENABLED","PolicyDetails":{"ResourceTypes":["VOLUME"],"TargetTags":[{"Key":"a","Value":"b"}],"Schedules":[{"Name":"a","CreateRule":{"CronExpression":"cron(0 * * * ? *)"}}]}}],"runs":{"policy-0123456789abcdef0/a":{"instant":"2026-01-01T00:00:00Z","done":["vol-1"]}}}`))
	f.Add([]byte(`{"version":1,"runs":{"x":null}}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		st, err := decodeState(b)
		if err != nil {
			return
		}
		for _, p := range st.Policies {
			if p == nil || !validPolicyID(p.ID) {
				t.Fatalf("decoded a policy without a valid ID: %+v", p)
			}
			for _, s := range p.Details.Schedules {
				tm, err := newTiming(s.CreateRule)
				if err != nil {
					t.Fatalf("decoded a schedule without timing: %v", err)
				}
				tm.latestDue(time.Unix(0, 0), time.Unix(0, 0).Add(48*time.Hour))
			}
		}
		for k, r := range st.Runs {
			if r == nil {
				t.Fatalf("decoded a nil run %q", k)
			}
		}
	})
}
