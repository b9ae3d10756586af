// Package storetest is the conformance suite for snapstore.Store backends:
// every backend runs the same cases (Run), so the engine can rely on the
// same behaviour from a local directory and an object store.
package storetest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/cowvol/cowvol/cow/snapstore"
)

// Run runs the conformance cases against the stores newStore returns (a
// fresh, empty store for each case).
func Run(t *testing.T, newStore func(t *testing.T) snapstore.Store) {
	ctx := context.Background()
	t.Run("PutGetRoundTrip", func(t *testing.T) {
		s := newStore(t)
		for _, data := range [][]byte{{}, []byte("x"), bytes.Repeat([]byte{0xab}, 3<<20)} {
			key := fmt.Sprintf("chunks/aa/obj-%d", len(data))
			if err := s.Put(ctx, key, data); err != nil {
				t.Fatal(err)
			}
			got, err := s.Get(ctx, key)
			if err != nil || !bytes.Equal(got, data) {
				t.Fatalf("Get(%s) = %d bytes, %v; want %d bytes", key, len(got), err, len(data))
			}
		}
	})
	t.Run("MissingKey", func(t *testing.T) {
		s := newStore(t)
		if _, err := s.Get(ctx, "no/such/key"); !errors.Is(err, snapstore.ErrNotFound) {
			t.Fatalf("Get of a missing key: %v, want ErrNotFound", err)
		}
		if ok, err := s.Exists(ctx, "no/such/key"); ok || err != nil {
			t.Fatalf("Exists of a missing key = %v, %v", ok, err)
		}
		if err := s.Delete(ctx, "no/such/key"); err != nil {
			t.Fatalf("Delete of a missing key: %v", err)
		}
	})
	t.Run("OverwriteReplacesWhole", func(t *testing.T) {
		s := newStore(t)
		s.Put(ctx, "k", []byte("first version, long"))
		if err := s.Put(ctx, "k", []byte("second")); err != nil {
			t.Fatal(err)
		}
		if got, _ := s.Get(ctx, "k"); string(got) != "second" {
			t.Fatalf("after overwrite: %q", got)
		}
	})
	t.Run("ListByPrefixInOrder", func(t *testing.T) {
		s := newStore(t)
		keys := []string{"manifests/snap-b", "chunks/01/c", "manifests/snap-a", "chunks/00/b", "chunks/00/a", "manifestsX"}
		for _, k := range keys {
			if err := s.Put(ctx, k, []byte(k)); err != nil {
				t.Fatal(err)
			}
		}
		for prefix, want := range map[string][]string{
			"chunks/":    {"chunks/00/a", "chunks/00/b", "chunks/01/c"},
			"chunks/00/": {"chunks/00/a", "chunks/00/b"},
			"manifests/": {"manifests/snap-a", "manifests/snap-b"},
			"manifests":  {"manifests/snap-a", "manifests/snap-b", "manifestsX"},
			"nothing/":   nil,
		} {
			var got []string
			err := s.List(ctx, prefix, func(o snapstore.ObjectInfo) error {
				got = append(got, o.Key)
				if o.Size != int64(len(o.Key)) {
					t.Errorf("List: %s has size %d, want %d", o.Key, o.Size, len(o.Key))
				}
				if age := time.Since(o.ModTime); age < -time.Minute || age > time.Hour {
					t.Errorf("List: %s modified %v ago", o.Key, age)
				}
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			if fmt.Sprint(got) != fmt.Sprint(want) {
				t.Errorf("List(%q) = %v, want %v", prefix, got, want)
			}
		}
	})
	t.Run("GetRange", func(t *testing.T) {
		s := newStore(t)
		data := make([]byte, 1<<20+7)
		for i := range data {
			data[i] = byte(i * 7)
		}
		if err := s.Put(ctx, "packs/p", data); err != nil {
			t.Fatal(err)
		}
		for _, r := range [][2]int64{{0, 1}, {0, int64(len(data))}, {1000, 65536}, {int64(len(data)) - 3, 3}, {5, 0}} {
			got, err := s.GetRange(ctx, "packs/p", r[0], r[1])
			if err != nil || !bytes.Equal(got, data[r[0]:r[0]+r[1]]) {
				t.Fatalf("GetRange(%d, %d) = %d bytes, %v", r[0], r[1], len(got), err)
			}
		}
		if _, err := s.GetRange(ctx, "packs/p", int64(len(data))-3, 4); err == nil {
			t.Error("GetRange past the end succeeded")
		}
		if _, err := s.GetRange(ctx, "packs/missing", 0, 1); !errors.Is(err, snapstore.ErrNotFound) {
			t.Errorf("GetRange of a missing key: %v, want ErrNotFound", err)
		}
	})
	t.Run("Delete", func(t *testing.T) {
		s := newStore(t)
		s.Put(ctx, "a/b", []byte("x"))
		if err := s.Delete(ctx, "a/b"); err != nil {
			t.Fatal(err)
		}
		if ok, _ := s.Exists(ctx, "a/b"); ok {
			t.Fatal("object still exists after Delete")
		}
	})
	t.Run("InvalidKeysRefused", func(t *testing.T) {
		s := newStore(t)
		for _, k := range []string{"", "/abs", "a/../b", "..", "a//b", "sp ace", "a/./b", "back\\slash"} {
			if err := s.Put(ctx, k, []byte("x")); !errors.Is(err, snapstore.ErrInvalidKey) {
				t.Errorf("Put(%q): %v, want ErrInvalidKey", k, err)
			}
		}
	})
	t.Run("ConcurrentPutsOfOneKey", func(t *testing.T) {
		s := newStore(t)
		data := bytes.Repeat([]byte("chunk"), 100000)
		var wg sync.WaitGroup
		for range 8 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if err := s.Put(ctx, "chunks/ff/same", data); err != nil {
					t.Error(err)
				}
			}()
		}
		wg.Wait()
		if got, err := s.Get(ctx, "chunks/ff/same"); err != nil || !bytes.Equal(got, data) {
			t.Fatalf("after concurrent puts: %d bytes, %v", len(got), err)
		}
	})
}
