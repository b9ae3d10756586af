package cow

import (
	"context"

	"github.com/cowvol/cowvol/cow/lineage"
	"github.com/cowvol/cowvol/meta"
)

// volumeEnv is what a volume uses of its engine, and all it can reach:
// shared services (the metadata store and its group sync, buffers, the
// space guard, the background I/O governor, the snapshot reader, the
// lineage keys) and the paths of its files. A volume never calls the
// engine's API.
type volumeEnv struct {
	meta     *meta.Store
	metaSync *groupSync
	buffers  *bufferPool
	space    *spaceGuard
	bg       *ioGovernor
	reader   *snapshotReader
	lineages *lineage.Cache
	// ctx is the engine's context, cancelled when it closes (set once
	// the engine has recovered its volumes).
	ctx        func() context.Context
	dataPath   func(volID string) string
	damagePath func(volID string) string
	// afterLoadPage: see Options.afterLoadPage.
	afterLoadPage func(ctx context.Context, volID string, page uint64)
	// inSyncRound: see engineHooks.inSyncRound.
	inSyncRound func(volID string)
}

func newVolumeEnv(e *Engine) *volumeEnv {
	return &volumeEnv{
		meta: e.meta, metaSync: e.metaSync, buffers: &e.buffers, space: e.space, bg: e.bg,
		reader: e.reader, lineages: e.lineages,
		ctx:      func() context.Context { return e.ctx },
		dataPath: e.dataPath, damagePath: e.damagePath,
		afterLoadPage: e.afterLoadPage,
		inSyncRound: func(volID string) {
			if h := e.hooks.inSyncRound; h != nil {
				h(volID)
			}
		},
	}
}
