package meta

import (
	"errors"
	"fmt"
	"strings"
)

// ErrDamaged: the metadata store failed an integrity check when it was
// opened. Its records may be incomplete or wrong, so nothing that depends
// on them (data the records do not explain, above all) may be destroyed on
// their word. Open changes nothing when it returns it.
var ErrDamaged = errors.New("the metadata store is damaged")

// DamageError says what the integrity checks found.
type DamageError struct {
	// Dir is the metadata directory (or the data dir, for the engine's
	// own checks).
	Dir string
	// Findings name each problem, with the file and what it would cost.
	Findings []string
	// Kept is where the store's files were copied as found, when the
	// damage was accepted; empty otherwise.
	Kept string
}

func (e *DamageError) Error() string {
	return fmt.Sprintf("%v: %s: %s", ErrDamaged, e.Dir, strings.Join(e.Findings, "; "))
}

func (e *DamageError) Unwrap() error { return ErrDamaged }
