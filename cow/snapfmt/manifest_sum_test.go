package snapfmt

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

var updateGolden = flag.Bool("update-golden", false, "rewrite the version-2 golden manifests in cow/snapfmt/testdata")

// goldenManifest is what every golden manifest in cow/snapfmt/testdata describes
// (encrypted ones: another snapshot ID and description, no Outpost).
func goldenManifest(encrypted bool) *Manifest {
	seg := func(s string) string { return SegmentKey(sha256.Sum256([]byte(s))) }
	start := time.Date(2026, 11, 25, 10, 30, 0, 123000000, time.UTC)
	m := &Manifest{
		SnapshotID: "snap-0123456789abcdef0", VolumeID: "vol-0123456789abcdef0",
		VolumeSize: 3 << 32, BlockSize: 64 << 10, StartTime: start,
		CompletionTime: start.Add(1500 * time.Millisecond),
		Description:    "golden v1 <&> é",
		Tags:           []Tag{{Key: "Name", Value: "golden"}, {Key: "env", Value: "test"}},
		OwnerID:        "111111111111",
		OutpostArn:     "arn:aws:outposts:us-east-1:123456789012:outpost/op-0123456789abcdef0",
		DataBytes:      (16 + 65536) * 64 << 10,
		Segments:       []SegmentRef{{0, seg("a"), 16}, {2, seg("b"), 65536}},
	}
	if encrypted {
		m.SnapshotID, m.Description, m.OutpostArn = "snap-0fedcba9876543210", "golden v1 encrypted", ""
		enc := goldenEncryption
		m.Encryption = &enc
	}
	return m
}

var goldenEncryption = Encryption{KMSKeyARN: "arn:aws:kms:us-east-1:111111111111:key/00000000-0000-4000-8000-000000000001",
	WrappedKey: []byte("a wrapped data key, opaque here"), DataKeyID: "11111111-2222-4333-8444-555555555555"}

// goldenKeys are the encrypted goldens' lineage: an all-zero data key.
func goldenKeys(t testing.TB) *Keys {
	t.Helper()
	k, err := DeriveKeys(make([]byte, 32), goldenEncryption)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// goldenFiles: manifests as daemons wrote them. The version-1 ones were
// written by the code before format version 2 (manifest-v1-empty.json in
// the first format's spelling, "segments":null); the version-2 ones are
// rewritten with -update-golden.
var goldenFiles = []struct {
	file      string
	version   int
	encrypted bool
	empty     bool
}{
	{"manifest-v1.json", 1, false, false},
	{"manifest-v1-encrypted.json", 1, true, false},
	{"manifest-v1-empty.json", 1, false, true},
	{"manifest-v2.json", 2, false, false},
	{"manifest-v2-encrypted.json", 2, true, false},
}

func readGolden(t testing.TB, file string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", file))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// writeGoldenV2 rewrites the version-2 goldens from goldenManifest.
func writeGoldenV2(t *testing.T) {
	for _, enc := range []bool{false, true} {
		var k *Keys
		file := "manifest-v2.json"
		if enc {
			k, file = goldenKeys(t), "manifest-v2-encrypted.json"
		}
		b, err := EncodeManifest(k, goldenManifest(enc))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join("testdata", file), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// sameManifest reports whether a and b describe the same snapshot, format
// fields (version, checksum) aside: times as instants, empty lists as none.
func sameManifest(a, b *Manifest) bool {
	norm := func(m *Manifest) Manifest {
		c := *m
		c.Version, c.Checksum = 0, ""
		c.StartTime, c.CompletionTime = c.StartTime.UTC(), c.CompletionTime.UTC()
		if len(c.Tags) == 0 {
			c.Tags = nil
		}
		if len(c.Refs) == 0 {
			c.Refs = nil
		}
		if len(c.Sealed) == 0 {
			c.Sealed = nil
		}
		if len(c.Segments) == 0 {
			c.Segments = nil
		}
		if c.Encryption != nil && len(c.Encryption.WrappedKey) == 0 {
			e := *c.Encryption
			e.WrappedKey = nil
			c.Encryption = &e
		}
		return c
	}
	return reflect.DeepEqual(norm(a), norm(b))
}

// TestManifestGoldenFiles: manifests of both format versions, plaintext
// and encrypted, decode (and open) to what they describe; the plaintext
// version-2 golden is exactly what the encoder writes today.
func TestManifestGoldenFiles(t *testing.T) {
	if *updateGolden {
		writeGoldenV2(t)
	}
	for _, g := range goldenFiles {
		t.Run(g.file, func(t *testing.T) {
			b := readGolden(t, g.file)
			m, err := DecodeManifest(b)
			if err != nil {
				t.Fatalf("decode: %v", err)
			}
			if m.Version != g.version {
				t.Errorf("version %d, want %d", m.Version, g.version)
			}
			if g.empty {
				if m.SnapshotID != "snap-00000000000000001" || m.VolumeSize != 1<<20 || len(m.Segments) != 0 {
					t.Errorf("decoded %+v", m)
				}
				return
			}
			want := goldenManifest(g.encrypted)
			if g.encrypted {
				if m.Segments != nil || len(m.Refs) != len(want.Segments) {
					t.Fatalf("encrypted golden decoded with segments %v, refs %v", m.Segments, m.Refs)
				}
				if err := OpenManifest(goldenKeys(t), m); err != nil {
					t.Fatalf("open: %v", err)
				}
				m.Refs, m.Sealed = nil, nil
			}
			if !sameManifest(m, want) {
				t.Errorf("decoded\n%+v\nwant\n%+v", m, want)
			}
		})
	}
	enc, err := EncodeManifest(nil, goldenManifest(false))
	if err != nil {
		t.Fatal(err)
	}
	if golden := readGolden(t, "manifest-v2.json"); !bytes.Equal(enc, golden) {
		t.Errorf("the encoder writes\n%s\nnot the golden\n%s", enc, golden)
	}
}

// wantRefused fails t unless b, a manifest changed by what, is refused.
func wantRefused(t *testing.T, b []byte, what string) {
	t.Helper()
	if m, err := DecodeManifest(b); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("%s: decoded (%v): %+v\n%s", what, err, m, b)
	}
}

// TestManifestEveryChangeRefused: in a version-2 manifest, plaintext or
// encrypted, every single-bit flip anywhere is refused; in its header (the
// version and checksum fields, which decide the version) so is every
// change of one byte to any value, and every pair of bit flips in the
// version field and the checksum's key: none turns it into an accepted
// version-1 manifest.
func TestManifestEveryChangeRefused(t *testing.T) {
	header := len(manifestSumPrefix) + manifestSumLen + 2 // through `",`
	for _, file := range []string{"manifest-v2.json", "manifest-v2-encrypted.json"} {
		t.Run(file, func(t *testing.T) {
			b := readGolden(t, file)
			if _, err := DecodeManifest(b); err != nil {
				t.Fatal(err)
			}
			c := bytes.Clone(b)
			for i := range c {
				for bit := range 8 {
					c[i] ^= 1 << bit
					wantRefused(t, c, "a bit flipped")
					c[i] ^= 1 << bit
				}
			}
			for i := range header {
				for v := range 256 {
					if byte(v) == b[i] {
						continue
					}
					c[i] = byte(v)
					wantRefused(t, c, "a header byte changed")
				}
				c[i] = b[i]
			}
			prefixBits := 8 * len(manifestSumPrefix)
			for x := range prefixBits {
				for y := x + 1; y < prefixBits; y++ {
					c[x/8] ^= 1 << (x % 8)
					c[y/8] ^= 1 << (y % 8)
					wantRefused(t, c, "two bits flipped in the header")
					c[x/8] ^= 1 << (x % 8)
					c[y/8] ^= 1 << (y % 8)
				}
			}
		})
	}
}

// TestManifestVersionRules: which objects are version 1 and which 2, by
// name; and the version-1 damage strict decoding catches (a damaged key
// name would otherwise drop its field: a segment list read as empty reads
// zeros, a refs list read as empty has a collector delete the data).
func TestManifestVersionRules(t *testing.T) {
	v1 := string(readGolden(t, "manifest-v1.json"))
	v1enc := string(readGolden(t, "manifest-v1-encrypted.json"))
	v2 := string(readGolden(t, "manifest-v2.json"))
	sum := v2[len(manifestSumPrefix) : len(manifestSumPrefix)+manifestSumLen]
	noSum := strings.Replace(v2, `"checksum":"`+sum+`",`, "", 1)
	// restamp gives a changed version-2 manifest a right checksum.
	restamp := func(s string) string {
		b := []byte(s)
		copy(manifestSumField(b), manifestSum(b))
		return string(b)
	}
	for _, tt := range []struct {
		name string
		b    string
		ok   bool
	}{
		{"version 2", v2, true},
		{"version 2 changed and stamped again", restamp(strings.Replace(v2, `"i":0`, `"i":1`, 1)), true},
		{"version 2 to 3", strings.Replace(v2, `"version":2`, `"version":3`, 1), false},
		{"version 2 to 1, checksum kept", strings.Replace(v2, `"version":2`, `"version":1`, 1), false},
		{"version 2 to 1, checksum blanked", strings.Replace(strings.Replace(v2, `"version":2`, `"version":1`, 1), sum, strings.Repeat("0", 64), 1), false},
		{"version 2, checksum in capitals", strings.Replace(v2, sum, strings.ToUpper(sum), 1), false},
		{"version 2, no checksum", noSum, false},
		{"version 2, checksum field last", strings.TrimSuffix(noSum, "}") + `,"checksum":"` + sum + `"}`, false},
		{"version 2, data after its end", v2 + " {}", false},
		{"version 1", v1, true},
		{"version 1 with a checksum", strings.Replace(v1, `{"version":1,`, `{"version":1,"checksum":"`+sum+`",`, 1), false},
		{"version 1, version 0", strings.Replace(v1, `"version":1`, `"version":0`, 1), false},
		{"version 1, the segments key", strings.Replace(v1, `"segments":`, `"segmentr":`, 1), false},
		{"version 1, a segment's index key", strings.Replace(v1, `"i":0`, `"j":0`, 1), false},
		{"version 1, a negative block count", strings.Replace(v1, `"n":16`, `"n":-6`, 1), false},
		{"version 1, the refs key", strings.Replace(v1enc, `"refs":`, `"refr":`, 1), false},
		{"version 1, encrypted with an empty segment list", strings.Replace(v1enc, `"refs":`, `"segments":[],"refs":`, 1), false},
		{"version 1, data after its end", v1 + "x", false},
	} {
		_, err := DecodeManifest([]byte(tt.b))
		if tt.ok && err != nil {
			t.Errorf("%s: %v", tt.name, err)
		}
		if !tt.ok && !errors.Is(err, ErrCorrupt) {
			t.Errorf("%s: %v, want ErrCorrupt", tt.name, err)
		}
	}
}

// checkManifestRoundTrip: decoding b never panics; a manifest that
// decodes encodes again (in the version written) to one that decodes
// equal, and encodes once more to the same bytes.
func checkManifestRoundTrip(t *testing.T, b []byte) {
	m, err := DecodeManifest(b)
	if err != nil {
		if !errors.Is(err, ErrCorrupt) {
			t.Fatalf("decode error not ErrCorrupt: %v", err)
		}
		return
	}
	b2, err := marshalManifest(m)
	if err != nil {
		t.Fatalf("decoded %+v, which does not encode: %v", m, err)
	}
	m2, err := DecodeManifest(b2)
	if err != nil {
		t.Fatalf("encoded %s does not decode: %v", b2, err)
	}
	if m2.Version != manifestVersion || !sameManifest(m, m2) {
		t.Fatalf("decoded\n%+v\nencoded and decoded again\n%+v", m, m2)
	}
	if b3, err := marshalManifest(m2); err != nil || !bytes.Equal(b2, b3) {
		t.Fatalf("encoded twice: %v\n%s\n%s", err, b2, b3)
	}
}

// FuzzDecodeManifest: see checkManifestRoundTrip. An input that opens as a
// version-2 manifest is tried once more with its checksum made right, so
// that the fuzzer reaches what lies behind the checksum.
func FuzzDecodeManifest(f *testing.F) {
	for _, g := range goldenFiles {
		f.Add(readGolden(f, g.file))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		checkManifestRoundTrip(t, b)
		if hasManifestSum(b) {
			c := bytes.Clone(b)
			copy(manifestSumField(c), manifestSum(c))
			checkManifestRoundTrip(t, c)
		}
	})
}
