package control

import (
	"testing"
	"time"
)

func TestEBSTokens(t *testing.T) {
	st := newEBSState()
	now := time.Now()
	st.now = func() time.Time { return now }
	tok, exp := st.issue(kindBlock, []string{"snap-1"}, 42)
	if !exp.After(now) {
		t.Fatalf("expiry %v", exp)
	}
	cases := []struct {
		name  string
		token string
		kind  string
		snaps []string
		want  error
	}{
		{"good", tok, kindBlock, []string{"snap-1"}, nil},
		{"other snapshot", tok, kindBlock, []string{"snap-2"}, errTokenMalformed},
		{"other kind", tok, kindBlocks, []string{"snap-1"}, errTokenMalformed},
		{"not base64", "@@", kindBlock, []string{"snap-1"}, errTokenMalformed},
		{"truncated", tok[:20], kindBlock, []string{"snap-1"}, errTokenMalformed},
		{"another server's", func() string { s, _ := newEBSState().issue(kindBlock, []string{"snap-1"}, 42); return s }(), kindBlock, []string{"snap-1"}, errTokenMalformed},
	}
	for _, tc := range cases {
		idx, err := st.decodeToken(tc.token, tc.kind, tc.snaps)
		if err != tc.want || (err == nil && idx != 42) {
			t.Errorf("%s: %d %v, want %v", tc.name, idx, err, tc.want)
		}
	}
	st.now = func() time.Time { return exp }
	if _, err := st.decodeToken(tok, kindBlock, []string{"snap-1"}); err != errTokenExpired {
		t.Errorf("at its expiry: %v", err)
	}
}

// FuzzEBSTokenDecode: any string decodes to an error or to the index a
// token issued for it carries; never a panic, never a negative index.
func FuzzEBSTokenDecode(f *testing.F) {
	st := newEBSState()
	good, _ := st.issue(kindChanged, []string{"snap-a", "snap-b"}, 7)
	f.Add(good)
	f.Add("")
	f.Add("AQAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA==")
	f.Fuzz(func(t *testing.T, token string) {
		idx, err := st.decodeToken(token, kindChanged, []string{"snap-a", "snap-b"})
		if err == nil && (token != good || idx != 7) {
			t.Fatalf("%q decoded to %d", token, idx)
		}
	})
}
