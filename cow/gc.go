package cow

import (
	"context"
	"fmt"
	"strings"

	"github.com/cowvol/cowvol/cow/snapstore"
)

// collectGarbageLocked deletes the segments and chunks of store storeName
// that no manifest and no hold references (mark and sweep). e.gc is held
// exclusively, so no flush is adding references meanwhile.
func (e *Engine) collectGarbageLocked(ctx context.Context, storeName string) error {
	st, err := e.store(storeName)
	if err != nil {
		return err
	}
	var roots []string
	for _, prefix := range []string{"snapshots/", "holds/"} {
		err := st.List(ctx, prefix, func(o snapstore.ObjectInfo) error {
			if prefix == "holds/" || strings.HasSuffix(o.Key, "/manifest") {
				roots = append(roots, o.Key)
			}
			return nil
		})
		if err != nil {
			return fmt.Errorf("gc: list roots: %w", err)
		}
	}
	liveSegs := map[string]bool{}
	liveChunks := map[string]bool{}
	for _, root := range roots {
		m, err := e.loadManifest(ctx, st, root)
		if err != nil {
			return fmt.Errorf("gc: %w", err)
		}
		for _, ref := range m.Segments {
			if liveSegs[ref.Key] {
				continue
			}
			liveSegs[ref.Key] = true
			seg, err := e.loadSegment(ctx, st, ref.Key)
			if err != nil {
				return fmt.Errorf("gc: %w", err)
			}
			for _, id := range seg {
				liveChunks[chunkKey(id)] = true
			}
		}
	}
	deleted := 0
	for prefix, live := range map[string]map[string]bool{"segments/": liveSegs, "chunks/": liveChunks} {
		var dead []string
		err := st.List(ctx, prefix, func(o snapstore.ObjectInfo) error {
			if !live[o.Key] {
				dead = append(dead, o.Key)
			}
			return nil
		})
		if err != nil {
			return fmt.Errorf("gc: list %s: %w", prefix, err)
		}
		for _, k := range dead {
			if err := st.Delete(ctx, k); err != nil {
				return fmt.Errorf("gc: %w", err)
			}
			deleted++
		}
	}
	if deleted > 0 {
		e.log.Info("snapshot store garbage collected", "store", storeName, "objects_deleted", deleted, "roots", len(roots))
	}
	return nil
}
