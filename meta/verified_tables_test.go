package meta

import (
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// checkCounts runs the open check on dir as a start in boot would: how
// many tables it read and verified, how many it knew verified in this
// boot, and what it found.
func checkCounts(t *testing.T, dir, boot string) (verified, remembered int, findings []string) {
	t.Helper()
	w, werr := readWitness(witnessPath(dir))
	var ws *witnessState
	if werr == nil {
		ws = &w
	}
	c := checkStore(dir, badgerOptions(Options{Dir: dir}, slog.Default()), ws, werr, boot)
	return c.verified, c.remembered, c.findings
}

// TestOpenVerifiesEachTableOncePerBoot: a start verifies every table once
// in a boot; the next start in the same boot verifies only tables it does
// not know, one in another boot all of them, and a known table written to
// since (its change time moves) is verified again, its damage found.
func TestOpenVerifiesEachTableOncePerBoot(t *testing.T) {
	im := makeImage(t, imageRecords, 500, true).copy(t)
	tables := glob(t, im.dir, "*.sst")
	if len(tables) == 0 {
		t.Fatal("the image has no table")
	}
	if ver, rem, _ := checkCounts(t, im.dir, "boot-A"); ver != len(tables) || rem != 0 {
		t.Fatalf("before any start: %d verified, %d known, want all %d verified", ver, rem, len(tables))
	}
	if n, err := liveCount(t, im.dir, "boot-A"); err != nil || n != imageRecords {
		t.Fatalf("first start: %d records, %v", n, err)
	}
	now := glob(t, im.dir, "*.sst")
	ver, rem, f := checkCounts(t, im.dir, "boot-A")
	if len(f) > 0 || rem == 0 || ver+rem != len(now) || ver > len(now)-len(tables) {
		t.Fatalf("a second start in the boot: %d verified, %d known of %d tables (%d before the first), findings %v", ver, rem, len(now), len(tables), f)
	}
	if ver, rem, _ := checkCounts(t, im.dir, "boot-B"); ver != len(now) || rem != 0 {
		t.Fatalf("a start in another boot: %d verified, %d known, want all %d verified", ver, rem, len(now))
	}
	// A bit of a data block: only reading and verifying the table finds
	// it (Badger's verification panics on it: "does not open").
	flipBit(t, tables[0], 100, 5)
	_, _, f = checkCounts(t, im.dir, "boot-A")
	if !strings.Contains(strings.Join(f, " "), filepath.Base(tables[0])+": ") {
		t.Fatalf("a known table altered: findings %v, want it verified again and refused", f)
	}
	if _, err := liveCount(t, im.dir, "boot-A"); !errors.Is(err, ErrDamaged) {
		t.Fatalf("open with a known table altered: %v, want ErrDamaged", err)
	}
}

// TestVerifiedTablesFileDamaged: a torn or altered record of verified
// tables is ignored (every table verified), never trusted.
func TestVerifiedTablesFileDamaged(t *testing.T) {
	im := makeImage(t, imageRecords, 500, true).copy(t)
	if _, err := liveCount(t, im.dir, "boot-A"); err != nil {
		t.Fatal(err)
	}
	path := verifiedPath(im.dir)
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	for _, cut := range []int{len(b) - 1, len(b) / 2, 10} {
		if err := os.WriteFile(path, b[:cut], 0o600); err != nil {
			t.Fatal(err)
		}
		if got := readVerified(path, "boot-A"); len(got) != 0 {
			t.Fatalf("a record cut to %d of %d bytes gave %d tables", cut, len(b), len(got))
		}
	}
	b[len(b)/2] ^= 1
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	if got := readVerified(path, "boot-A"); len(got) != 0 {
		t.Fatalf("an altered record gave %d tables", len(got))
	}
}
