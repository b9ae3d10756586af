package cow

import (
	"context"
	"log/slog"
	"sync"

	"github.com/cowvol/cowvol/cow/lineage"
	"github.com/cowvol/cowvol/cow/snapstore"
	"github.com/cowvol/cowvol/meta"
)

// fastRestoreEnv is what fast restores (fastRestores) use of their
// engine, and all they can reach: where the records are stored, the
// snapshots and their stores, the snapshot reader an optimization reads
// through, and the engine's background lifetime. Fast restores never call
// the engine's API.
type fastRestoreEnv struct {
	records fastRestoreRecords
	lookup  func(ctx context.Context, id string) (*snapshot, error)
	// checkPermission refuses a snapshot this account may not create
	// volumes from (CheckCreateVolumePermission).
	checkPermission func(ctx context.Context, id string) error
	store           func(name string) (snapstore.Store, error)
	reader          *snapshotReader
	lineages        *lineage.Cache
	log             *slog.Logger
	// ctx is the engine's background context (set once it has started)
	// and wg its goroutines: the optimizations and disables are among
	// them.
	ctx func() context.Context
	wg  *sync.WaitGroup
}

// fastRestoreRecords is where the fast restore records are stored (the
// metadata store).
type fastRestoreRecords interface {
	FastRestores() ([]meta.FastRestoreRecord, error)
	PutFastRestore(r meta.FastRestoreRecord) error
	DeleteFastRestore(snapID string) error
}

func newFastRestoreEnv(e *Engine) *fastRestoreEnv {
	return &fastRestoreEnv{
		records: e.meta, lookup: e.lookupSnapshot, checkPermission: e.CheckCreateVolumePermission,
		store: e.store, reader: e.reader, lineages: e.lineages, log: e.log,
		ctx: func() context.Context { return e.ctx },
		wg:  &e.wg,
	}
}
