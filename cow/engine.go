package cow

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/cowvol/cowvol/cow/lineage"
	"github.com/cowvol/cowvol/cow/snapstore"
	"github.com/cowvol/cowvol/meta"
	"golang.org/x/sys/unix"
)

// ErrDataDirLocked: another process holds the data directory.
var ErrDataDirLocked = errors.New("data directory is in use by another cowvol daemon")

// Options configure an Engine.
type Options struct {
	// DataDir holds the metadata database and the volumes' data files.
	DataDir string
	// SyncInterval bounds how long a write that nobody fsyncs stays
	// volatile. Zero means DefaultSyncInterval.
	SyncInterval time.Duration
	Logger       *slog.Logger

	// SnapshotStore is the regional snapshot store; nil means a
	// directory store at <DataDir>/snapshots.
	SnapshotStore snapstore.Store
	// LocalSnapshotStore and OutpostArn make this host an Outpost:
	// CreateSnapshot with OutpostArn stores the snapshot locally.
	LocalSnapshotStore snapstore.Store
	OutpostArn         string
	// FlushDeadline is how long a snapshot's flush retries a failing
	// store before the snapshot ends in state error. Zero means
	// DefaultFlushDeadline.
	FlushDeadline time.Duration
	// AccountID owns the snapshots this daemon creates (their manifests'
	// ownerId). Empty means DefaultAccountID.
	AccountID string
	// GCGrace: garbage collection deletes no object younger than this,
	// nor one stored after the start of a live flush lease less this.
	// Zero means DefaultGCGrace.
	GCGrace time.Duration
	// CatalogInterval is how often the catalogue of snapshots in the
	// stores is refreshed. Zero means DefaultCatalogInterval.
	CatalogInterval time.Duration
	// LeaseTTL: a flush lease not refreshed for this long is dead (its
	// daemon stopped). Zero means DefaultLeaseTTL.
	LeaseTTL time.Duration
	// StoreCallTimeout bounds each call to a snapshot store. Zero means
	// DefaultStoreCallTimeout.
	StoreCallTimeout time.Duration
	// MetadataReserve is the free space on the data dir's file system
	// that block data never takes, so the metadata store always has room.
	// Zero means DefaultMetadataReserve; negative means none (tests).
	MetadataReserve int64
	// FlushRetryBase is the first backoff after a failed flush attempt;
	// it doubles up to 30 s. Zero means 1 s. (Tests shorten it.)
	FlushRetryBase time.Duration
	// HydrateFaultRetry is the first wait before a restored volume's
	// hydrator retries blocks whose snapshot data could not be read; it
	// doubles up to 10 minutes. Zero means DefaultHydrateFaultRetry.
	HydrateFaultRetry time.Duration
	// Keys wraps and unwraps the data keys of encrypted volumes and
	// snapshots. Without it, encryption is refused (ErrNoKeyManager).
	Keys KeyManager
	// DirectIO: the volumes' data files bypass the page cache for
	// whole-page I/O (direct_file.go). Faster fsync at queue depth 1,
	// slower reads: a trade-off, off by default.
	DirectIO bool
	// bootID, if set, stands for this boot's ID (tests: a reboot).
	bootID string
	// openFile, if set, opens the volumes' data files (tests: files that
	// simulate a power cut).
	openFile func(path string, create bool) (blockFile, error)
	// Lock, if set, is the data dir's lock, taken already (LockDataDir)
	// by the process that handed it over; Close closes it.
	Lock *os.File
	// JournalDir holds the volumes' map journals (map_journal.go): a
	// directory on a memory file system (tmpfs), kept while the machine
	// runs, so that a process taking over after a crash serves every
	// write the dead one acknowledged. Empty: no journal (a crash loses
	// the writes of the last sync interval that nobody fsynced, as a
	// power cut does).
	JournalDir string
	// AcceptMetadataLoss opens the engine even when the metadata store
	// fails its checks or its records do not explain the data files:
	// what it cannot place is kept in <DataDir>/lost+found/<time>/.
	// Without it such a start is refused with a *meta.DamageError
	// (ErrMetadataDamaged) and nothing is changed.
	AcceptMetadataLoss bool
	// freeSpace, if set, reports the data dir's free space (tests: a
	// disk that fills up on cue).
	freeSpace func(dir string) (int64, error)
	// afterLoadPage, if set, is called by a volume's background map
	// loader after it installed each page (tests: hold the load at a
	// chosen point); ctx ends when the engine stops.
	afterLoadPage func(ctx context.Context, volID string, page uint64)
	// ArchiveStore holds archived snapshots (ModifySnapshotTier); nil: no
	// archive tier. TierDay is the length of a day of a temporary
	// restore; zero means DefaultTierDay (tests shorten it).
	ArchiveStore snapstore.Store
	TierDay      time.Duration
	// BackgroundBusyRate is the rate (bytes per second) at which a flush
	// or a hydration moves data while the volumes serve foreground I/O;
	// while they are idle it runs at full speed. Zero means
	// DefaultBackgroundBusyRate; negative means no limit.
	BackgroundBusyRate int64
	// LockDay is the length of a day of snapshot lock durations (a
	// cool-off hour is a 24th of it). Zero means 24 hours, as EC2; only
	// tests set it (snapshot_lock.go).
	LockDay time.Duration
	// RecycleBinDay is the length of a Recycle Bin retention DAY. Zero
	// means DefaultRecycleBinDay; only tests shorten it.
	RecycleBinDay time.Duration
}

// DefaultAccountID owns snapshots unless Options.AccountID says otherwise.
const DefaultAccountID = "000000000000"

// DefaultSyncInterval is the background sync period (ext4's commit interval).
const DefaultSyncInterval = 5 * time.Second

// Engine owns every volume of one data directory.
type Engine struct {
	// Where it keeps volumes: the data dir, the metadata store and the
	// block files.
	dir     string
	lostDir string // where a start that accepts metadata loss keeps what it cannot place
	// journalDir holds the map journals ("": none); bootID is this
	// boot's, which a journal must carry to be replayed.
	journalDir, bootID string
	meta               *meta.Store
	metaSync           *groupSync // one Badger sync for many volumes' syncs
	lock               *os.File   // flock on <dir>/lock
	buffers            bufferPool
	space              *spaceGuard // keeps block data out of the metadata reserve
	openFile           func(path string, create bool) (blockFile, error)
	startTimes         phaseTimes // where Open spent its time, for the log
	directIO           bool       // data files bypass the page cache (direct_file.go)

	// What every part uses.
	log      *slog.Logger
	bg       *ioGovernor    // paces flushes and hydration against foreground I/O
	keys     KeyManager     // nil: no encryption
	lineages *lineage.Cache // unwrapped data keys
	hooks    engineHooks    // injection points for tests

	// The background work's lifetime (startBackground, StopBackground).
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	// Volumes.
	volumes   volumeTable
	volumeEnv *volumeEnv // what volumes use of the engine
	// loadTurn lets one volume's map load at a time (map_loader.go).
	loadTurn      chan struct{}
	afterLoadPage func(ctx context.Context, volID string, page uint64) // see Options
	hydrator      *hydrator                                            // restored volumes' base fetched (hydrator.go)

	// Snapshots: the table and catalogue, the stores and how they are
	// read, and the flusher.
	snapshots  snapshotTable
	stores     map[string]snapstore.Store // StoreRegional, StoreLocal
	outpostArn string
	reader     *snapshotReader // reads stored snapshots, through its caches
	fast       *fastRestores   // fast snapshot restores (fast_restore.go)
	flusher    *flusher        // pending snapshots into their stores (flusher.go)
	leaseTTL   time.Duration
	accountID  string
	// direct: snapshots being written through the EBS direct APIs
	// (direct_snapshot.go).
	direct directSessions

	// Stored snapshots' lifecycle: locks, the recycle bin, the archive
	// tier.
	locks *snapshotLocks // snapshot locks (snapshot_lock_api.go)
	rules ruleBook       // Recycle Bin rules (recycle_rules.go)
	bin   *recycleBin    // the Recycle Bin (recycle_bin.go)
	// copier copies stored snapshots for CopySnapshot and the archive
	// tier (snapshot_copier.go); directReads serves the EBS direct
	// APIs' reads (snapshot_blocks.go).
	copier      *snapshotCopier
	directReads directReads
	catalog     *catalog // other daemons' snapshots (catalog.go)
	tiers       *tiering // snapshot_tier_state.go

	// Garbage collection of the stores.
	gc gcState
}

// Open opens the engine on opts.DataDir, creating it if needed, and
// recovers every volume.
func Open(opts Options) (*Engine, error) {
	openStart := time.Now()
	log := opts.Logger
	if log == nil {
		log = slog.Default()
	}
	if opts.SyncInterval <= 0 {
		opts.SyncInterval = DefaultSyncInterval
	}
	dir, lock, err := prepareDataDir(opts)
	if err != nil {
		return nil, err
	}
	space, err := openSpaceGuard(dir, opts.MetadataReserve, opts.freeSpace, log)
	if err != nil {
		lock.Close()
		return nil, err
	}
	lostDir := filepath.Join(dir, "lost+found", time.Now().UTC().Format("20060102T150405Z"))
	metaStart := time.Now()
	ms, err := meta.Open(meta.Options{Dir: filepath.Join(dir, "meta"), Logger: log,
		AcceptDamage: opts.AcceptMetadataLoss, DamagedCopy: filepath.Join(lostDir, "meta")})
	if err != nil {
		lock.Close()
		return nil, err
	}
	if opts.SnapshotStore == nil {
		ds, err := snapstore.OpenDir(filepath.Join(dir, "snapshots"))
		if err != nil {
			ms.Close()
			lock.Close()
			return nil, err
		}
		opts.SnapshotStore = ds
	}
	space.guardStores(opts.SnapshotStore, opts.LocalSnapshotStore)
	callTimeout := cmp.Or(opts.StoreCallTimeout, DefaultStoreCallTimeout)
	opts.SnapshotStore = withCallTimeout(opts.SnapshotStore, callTimeout)
	opts.LocalSnapshotStore = withCallTimeout(opts.LocalSnapshotStore, callTimeout)
	if (opts.LocalSnapshotStore == nil) != (opts.OutpostArn == "") {
		ms.Close()
		lock.Close()
		return nil, fmt.Errorf("an Outpost needs both an Outpost ARN and a local snapshot store")
	}
	e := newEngine(opts, dir, lostDir, log, ms, lock, space)
	e.startTimes.add("meta_open", metaStart)
	if err := e.recover(opts.AcceptMetadataLoss, ms.AcceptedDamage() != nil); err != nil {
		e.closeVolumes()
		ms.Close()
		lock.Close()
		return nil, err
	}
	e.startBackground(opts.SyncInterval)
	e.log.Info("engine open", "took", time.Since(openStart).Round(time.Microsecond))
	return e, nil
}

// prepareDataDir makes the data directory (absolute) and its volumes
// directory, and takes its lock unless opts brings one.
func prepareDataDir(opts Options) (dir string, lock *os.File, err error) {
	dir, err = filepath.Abs(opts.DataDir)
	if err != nil {
		return "", nil, fmt.Errorf("data dir: %w", err)
	}
	for _, d := range []string{dir, filepath.Join(dir, "volumes")} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return "", nil, fmt.Errorf("create data dir: %w", err)
		}
	}
	if lock = opts.Lock; lock == nil {
		if lock, err = LockDataDir(dir); err != nil {
			return "", nil, err
		}
	}
	return dir, lock, nil
}

// newEngine is the engine of opts on an opened metadata store, before
// recovery: its fields with their defaults.
func newEngine(opts Options, dir, lostDir string, log *slog.Logger, ms *meta.Store, lock *os.File, space *spaceGuard) *Engine {
	e := &Engine{
		dir:        dir,
		lostDir:    lostDir,
		journalDir: opts.JournalDir,
		bootID:     cmp.Or(opts.bootID, meta.BootID()),
		log:        log,
		meta:       ms,
		lock:       lock,
		volumes:    volumeTable{byID: make(map[string]*volume)},
		snapshots: snapshotTable{byID: make(map[string]*snapshot), catalog: map[string]*snapshot{},
			catalogInterval: cmp.Or(opts.CatalogInterval, DefaultCatalogInterval)},
		stores:     map[string]snapstore.Store{StoreRegional: opts.SnapshotStore},
		outpostArn: opts.OutpostArn,
		space:      space,
		bg:         newIOGovernor(float64(cmp.Or(opts.BackgroundBusyRate, DefaultBackgroundBusyRate))),
		keys:       opts.Keys,
		lineages:   lineage.NewCache(opts.Keys),
		openFile:   opts.openFile,
		accountID:  cmp.Or(opts.AccountID, DefaultAccountID),
		gc:         gcState{pending: map[string]bool{}, wake: make(chan struct{}, 1), grace: cmp.Or(opts.GCGrace, DefaultGCGrace)},
		leaseTTL:   cmp.Or(opts.LeaseTTL, DefaultLeaseTTL),
		directIO:   opts.DirectIO,
	}
	e.reader = newSnapshotReader(e.store, e.lineages)
	e.fast = &fastRestores{}
	e.loadTurn, e.afterLoadPage = make(chan struct{}, 1), opts.afterLoadPage
	if opts.LocalSnapshotStore != nil {
		e.stores[StoreLocal] = opts.LocalSnapshotStore
	}
	e.tiers = newTiering(opts.ArchiveStore, opts.TierDay)
	e.metaSync = newGroupSync(ms.Sync)
	e.volumeEnv = newVolumeEnv(e)
	e.flusher, e.hydrator = newFlusher(e, opts), newHydrator(e, opts)
	e.locks = newSnapshotLocks(e, newLockUnits(opts.LockDay))
	e.rules = newRuleBook(e, newRecycleRules(opts.RecycleBinDay))
	e.catalog = newCatalog(e)
	e.bin = newRecycleBin(e) // after the catalogue: it adds restored snapshots to it
	e.copier, e.directReads = newSnapshotCopier(e), newDirectReads(e)
	e.tiers.env, e.fast.env = newTierEnv(e), newFastRestoreEnv(e)
	return e
}

// startBackground starts the engine's background work, which
// StopBackground stops: space, sync, flush, gc and catalogue loops, map
// loads and hydrators.
func (e *Engine) startBackground(syncInterval time.Duration) {
	e.ctx, e.cancel = context.WithCancel(context.Background())
	e.wg.Add(5)
	go e.spaceLoop()
	go e.syncLoop(syncInterval)
	go e.flusher.flushLoop()
	go e.gcLoop()
	go e.catalogLoop()
	e.wg.Add(1)
	go e.tierLoop()
	e.startMapLoads()
	e.hydrator.startHydrators()
	e.resumeFastRestores()
}

// LockDataDir takes an exclusive flock on <dir>/lock (creating dir),
// recording our PID: one daemon per data dir. The lock lasts while any
// process holds the returned file or a descriptor inherited from it.
func LockDataDir(dir string) (*os.File, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("create data dir: %w", err)
	}
	path := filepath.Join(dir, "lock")
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open lock file: %w", err)
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		pid, _ := io.ReadAll(f)
		f.Close()
		holder := strings.TrimSpace(string(pid))
		if holder == "" {
			holder = "unknown"
		}
		return nil, fmt.Errorf("%w: %s is locked by pid %s", ErrDataDirLocked, dir, holder)
	}
	if err := f.Truncate(0); err == nil {
		f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0)
	}
	return f, nil
}

func (e *Engine) dataPath(id string) string {
	return filepath.Join(e.dir, "volumes", id+".data")
}

// journalHeader identifies volume id's map journal: its volume, this
// metadata store and this boot.
func (e *Engine) journalHeader(id string) journalHeader {
	return journalHeader{volID: id, storeID: e.meta.ID(), boot: e.bootID}
}

func (e *Engine) journalPath(id string) string {
	return filepath.Join(e.journalDir, id+".journal")
}

// openJournal gives volume v its journal (if the engine keeps journals),
// holding recs, the changes of a replayed one not yet durable.
func (e *Engine) openJournal(v *volume, recs []journalRecord) error {
	if e.journalDir == "" {
		return nil
	}
	j, err := openJournal(e.journalPath(v.id), e.journalHeader(v.id), recs)
	if err != nil {
		return fmt.Errorf("volume %s: %w", v.id, err)
	}
	v.journal = j
	return nil
}

func (e *Engine) newVolume(r meta.VolumeRecord, f blockFile) *volume {
	gen := uint32(r.Generation)
	if gen < firstGeneration {
		gen = firstGeneration
	}
	v := &volume{
		id:        r.ID,
		blockSize: int64(r.BlockSize),
		created:   r.CreateTime,
		snapshot:  r.SnapshotID,
		env:       e.volumeEnv,
		file:      f,
		log:       e.log.With("volume", r.ID),
		gen:       gen,
		live:      newExtentMap(),
		dirty:     make(map[uint64]struct{}),
		record:    r,
	}
	v.size.Store(r.Size)
	for s := r.BlockSize; s > 1; s >>= 1 {
		v.shift++
	}
	v.stride = slotStride(r)
	if r.Encryption != nil {
		v.hot = &volumeSealer{enc: *r.Encryption}
		v.hot.counter.Store(r.NonceHWM)
		v.hot.hwm.Store(r.NonceHWM)
	}
	v.syncer = newGroupSync(v.syncRound)
	v.mapReady.Store(true) // a new volume's map is empty (recovery says otherwise)
	return v
}

// syncLoop syncs volumes with unsynced changes every interval.
func (e *Engine) syncLoop(interval time.Duration) {
	defer e.wg.Done()
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-e.ctx.Done():
			return
		case <-t.C:
		}
		for _, v := range e.allVolumes() {
			if v.dirtyLen() == 0 {
				continue
			}
			if err := v.sync(); err != nil {
				e.log.Error("background sync failed", "volume", v.id, "err", err)
			}
		}
	}
}

// allVolumes returns the open volumes, in no order.
func (e *Engine) allVolumes() []*volume {
	e.volumes.mu.Lock()
	defer e.volumes.mu.Unlock()
	out := make([]*volume, 0, len(e.volumes.byID))
	for _, v := range e.volumes.byID {
		out = append(out, v)
	}
	return out
}

// StopBackground stops the background sync, the flusher and the
// hydrators, and waits for them: a flush or hydration in progress stops at
// its next block and resumes at the next start. Volumes stay usable.
// Shutdown calls it first, so the final sync races no background writer.
func (e *Engine) StopBackground() {
	e.endSessions()
	e.cancel()
	e.wg.Wait()
	e.reader.ahead.stop()
}

// Close syncs every volume and releases the data directory. Open volume
// handles become unusable.
func (e *Engine) Close() error {
	e.volumes.mu.Lock()
	if e.volumes.closed {
		e.volumes.mu.Unlock()
		return nil
	}
	e.volumes.closed = true
	e.volumes.mu.Unlock()
	e.StopBackground()
	return errors.Join(e.SyncAll(), e.closeVolumes(), e.meta.Close(), e.lock.Close())
}

// SyncAll makes every write to every volume durable.
func (e *Engine) SyncAll() error {
	var errs []error
	for _, v := range e.allVolumes() {
		if err := v.sync(); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

func (e *Engine) closeVolumes() error {
	var errs []error
	for _, v := range e.allVolumes() {
		errs = append(errs, v.file.Close())
		if v.load != nil {
			v.load.view.Close() // a load that never started (a failed Open)
		}
		v.mapMu.Lock()
		if v.journal != nil {
			errs = append(errs, v.journal.close())
			v.journal = nil
		}
		v.mapMu.Unlock()
	}
	return errors.Join(errs...)
}

// OnVolumeRemoved registers fn to be called after a volume is deleted (the
// FUSE layer uses it to drop the file from the kernel's caches).
func (e *Engine) OnVolumeRemoved(fn func(id string)) {
	e.volumes.mu.Lock()
	defer e.volumes.mu.Unlock()
	e.volumes.onRemoved = fn
}

func (e *Engine) lookup(id string) (*volume, error) {
	e.volumes.mu.Lock()
	defer e.volumes.mu.Unlock()
	if e.volumes.closed {
		return nil, ErrClosed
	}
	v, ok := e.volumes.byID[id]
	if !ok {
		return nil, fmt.Errorf("%w: %s", ErrVolumeNotFound, id)
	}
	return v, nil
}

func (e *Engine) diskErr(op string, err error) error {
	if isNoSpace(err) {
		return fmt.Errorf("%s: %w: %w", op, ErrNoSpace, err)
	}
	return fmt.Errorf("%s: %w", op, err)
}

// DescribeVolumes returns every volume, sorted by ID.
func (e *Engine) DescribeVolumes(ctx context.Context) ([]VolumeInfo, error) {
	vols := e.allVolumes()
	out := make([]VolumeInfo, 0, len(vols))
	for _, v := range vols {
		vi, err := v.loadedInfo(ctx)
		if err != nil {
			return nil, err
		}
		out = append(out, vi)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out, nil
}

// VolumeInfo describes one volume.
func (e *Engine) VolumeInfo(id string) (VolumeInfo, error) {
	v, err := e.lookup(id)
	if err != nil {
		return VolumeInfo{}, err
	}
	return v.loadedInfo(context.Background())
}

func syncDir(path string) error {
	d, err := os.Open(path)
	if err != nil {
		return err
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("fsync %s: %w", path, err)
	}
	return nil
}
