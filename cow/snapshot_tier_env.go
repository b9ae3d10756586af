package cow

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/cowvol/cowvol/cow/snapstore"
)

// tierEnv is what the archive tier (tiering) uses of its engine, and all
// it can reach: the snapshot stores and the snapshot table, the snapshot
// reader's caches, the copier, the garbage collector's requests and grace
// period, and the engine's background lifetime. The tier never calls the
// engine's API.
type tierEnv struct {
	store  func(name string) (snapstore.Store, error)
	lookup func(ctx context.Context, id string) (*snapshot, error)
	// describe lists the snapshots (DescribeSnapshots).
	describe  func(ctx context.Context) ([]SnapshotInfo, error)
	snapshots *snapshotTable
	reader    *snapshotReader
	copier    *snapshotCopier
	// requestGC asks for a collection of a store (gc.go); collectArchive
	// collects the archive store when due (snapshot_tier_gc.go).
	requestGC      func(store string)
	collectArchive func()
	// gcGrace is how long garbage collection spares what became garbage.
	gcGrace time.Duration
	// leaseTTL is how long a flush lease lives unrenewed: an operation
	// shown in progress for longer was abandoned.
	leaseTTL  time.Duration
	accountID string
	log       *slog.Logger
	// ctx is the engine's background context (set once it has started)
	// and wg its goroutines: the tier's background jobs are among them.
	ctx func() context.Context
	wg  *sync.WaitGroup
}

func newTierEnv(e *Engine) *tierEnv {
	return &tierEnv{
		store: e.store, lookup: e.lookupSnapshot, describe: e.DescribeSnapshots,
		snapshots: &e.snapshots, reader: e.reader, copier: e.copier,
		requestGC: e.requestGC, collectArchive: e.collectArchive,
		gcGrace: e.gc.grace, leaseTTL: e.leaseTTL, accountID: e.accountID, log: e.log,
		ctx: func() context.Context { return e.ctx },
		wg:  &e.wg,
	}
}
