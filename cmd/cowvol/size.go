package main

import (
	"fmt"
	"math"
	"strconv"
	"strings"
)

// Binary units.
const (
	kib = 1 << 10
	mib = 1 << 20
	gib = 1 << 30
	tib = 1 << 40
)

var sizeUnits = map[string]int64{
	"b": 1,
	"k": kib, "kib": kib,
	"m": mib, "mib": mib,
	"g": gib, "gib": gib,
	"t": tib, "tib": tib,
}

// parseSize parses a size such as 4GiB, 512MiB, 1TiB, 64KiB or 4G (units
// are binary and case-insensitive); a plain integer counts in plainUnit
// bytes. The result is positive.
func parseSize(s string, plainUnit int64) (int64, error) {
	i := 0
	for i < len(s) && s[i] >= '0' && s[i] <= '9' {
		i++
	}
	digits, unit := s[:i], strings.ToLower(strings.TrimSpace(s[i:]))
	if digits == "" {
		return 0, fmt.Errorf("invalid size %q: want an integer with an optional unit (KiB, MiB, GiB, TiB)", s)
	}
	mult := plainUnit
	if unit != "" {
		var ok bool
		if mult, ok = sizeUnits[unit]; !ok {
			if strings.HasSuffix(unit, "b") && len(unit) == 2 {
				return 0, fmt.Errorf("invalid size %q: use binary units (KiB, MiB, GiB, TiB)", s)
			}
			return 0, fmt.Errorf("invalid size %q: unknown unit %q (want KiB, MiB, GiB or TiB)", s, s[i:])
		}
	}
	n, err := strconv.ParseInt(digits, 10, 64)
	if err != nil || n > math.MaxInt64/mult {
		return 0, fmt.Errorf("invalid size %q: too large", s)
	}
	if n == 0 {
		return 0, fmt.Errorf("invalid size %q: must be positive", s)
	}
	return n * mult, nil
}
