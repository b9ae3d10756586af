package cow

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
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

	"golang.org/x/sys/unix"

	"github.com/cowvol/cowvol/meta"
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
}

// DefaultSyncInterval is the background sync period (ext4's commit interval).
const DefaultSyncInterval = 5 * time.Second

// Engine owns every volume of one data directory.
type Engine struct {
	dir      string
	log      *slog.Logger
	meta     *meta.Store
	metaSync *groupSync // one Badger sync for many volumes' syncs
	lock     *os.File   // flock on <dir>/lock
	buffers  bufferPool

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	// mu guards the fields that follow.
	mu        sync.Mutex
	vols      map[string]*volume
	closed    bool
	onRemoved func(id string)
}

// Open opens the engine on opts.DataDir, creating it if needed, and
// recovers every volume.
func Open(opts Options) (*Engine, error) {
	log := opts.Logger
	if log == nil {
		log = slog.Default()
	}
	if opts.SyncInterval <= 0 {
		opts.SyncInterval = DefaultSyncInterval
	}
	dir, err := filepath.Abs(opts.DataDir)
	if err != nil {
		return nil, fmt.Errorf("data dir: %w", err)
	}
	for _, d := range []string{dir, filepath.Join(dir, "volumes")} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return nil, fmt.Errorf("create data dir: %w", err)
		}
	}
	lock, err := lockDataDir(dir)
	if err != nil {
		return nil, err
	}
	ms, err := meta.Open(meta.Options{Dir: filepath.Join(dir, "meta"), Logger: log})
	if err != nil {
		lock.Close()
		return nil, err
	}
	e := &Engine{
		dir:  dir,
		log:  log,
		meta: ms,
		lock: lock,
		vols: make(map[string]*volume),
	}
	e.metaSync = newGroupSync(ms.Sync)
	if err := e.recover(); err != nil {
		e.closeVolumes()
		ms.Close()
		lock.Close()
		return nil, err
	}
	e.ctx, e.cancel = context.WithCancel(context.Background())
	e.wg.Add(1)
	go e.syncLoop(opts.SyncInterval)
	return e, nil
}

// lockDataDir takes an exclusive flock on <dir>/lock, recording our PID.
func lockDataDir(dir string) (*os.File, error) {
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

// recover loads every volume from the metadata store, finishes interrupted
// deletions and removes data files that belong to no volume.
func (e *Engine) recover() error {
	recs, err := e.meta.Volumes()
	if err != nil {
		return fmt.Errorf("recover: %w", err)
	}
	known := make(map[string]bool)
	for _, r := range recs {
		if r.Deleting {
			e.log.Info("finishing interrupted deletion", "volume", r.ID)
			if err := e.purge(r); err != nil {
				return fmt.Errorf("recover: %w", err)
			}
			continue
		}
		v, err := e.loadVolume(r)
		if err != nil {
			return fmt.Errorf("recover volume %s: %w", r.ID, err)
		}
		e.vols[r.ID] = v
		known[r.ID] = true
	}
	entries, err := os.ReadDir(filepath.Join(e.dir, "volumes"))
	if err != nil {
		return fmt.Errorf("recover: %w", err)
	}
	for _, de := range entries {
		id, ok := strings.CutSuffix(de.Name(), ".data")
		if ok && !known[id] {
			e.log.Info("removing data file of no volume (interrupted create or delete)", "file", de.Name())
			if err := os.Remove(filepath.Join(e.dir, "volumes", de.Name())); err != nil {
				return fmt.Errorf("recover: %w", err)
			}
		}
	}
	if len(recs) > 0 {
		e.log.Info("recovered volumes", "count", len(e.vols))
	}
	return nil
}

// loadVolume rebuilds a volume's in-memory state from its records.
func (e *Engine) loadVolume(r meta.VolumeRecord) (*volume, error) {
	f, err := openOSFile(e.dataPath(r.ID), false)
	if err != nil {
		return nil, fmt.Errorf("open data file: %w", err)
	}
	v := e.newVolume(r, f)
	var used []uint64
	err = e.meta.LiveExtents(r.ID, func(blk uint64, me meta.Extent) error {
		if blk >= v.blocks {
			return fmt.Errorf("live map entry for block %d beyond the volume's %d blocks", blk, v.blocks)
		}
		x := extent{slot: me.Slot, gen: uint32(me.Gen)}
		if me.Zero() {
			x.flags = flagZero
		} else {
			used = append(used, me.Slot)
		}
		v.live.set(blk, x)
		return nil
	})
	if err == nil {
		// Versions in change sets of earlier generations still hold
		// their slots (a snapshot may need them).
		err = e.meta.ChangeExtents(r.ID, func(gen, blk uint64, me meta.Extent) error {
			if !me.Zero() {
				used = append(used, me.Slot)
			}
			return nil
		})
	}
	if err != nil {
		f.Close()
		return nil, err
	}
	// Slots not referenced by durable metadata may hold data of writes
	// whose metadata never became durable: punch them before reuse.
	holes := v.slots.rebuild(used)
	for _, h := range holes {
		if err := f.Punch(v.slotOffset(h[0]), v.slotOffset(h[1]-h[0])); err != nil {
			f.Close()
			return nil, err
		}
	}
	if err := f.Truncate(v.slotOffset(v.slots.next)); err != nil {
		f.Close()
		return nil, fmt.Errorf("trim data file: %w", err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return nil, err
	}
	return v, nil
}

func (e *Engine) newVolume(r meta.VolumeRecord, f blockFile) *volume {
	gen := uint32(r.Generation)
	if gen < firstGeneration {
		gen = firstGeneration
	}
	v := &volume{
		id:        r.ID,
		size:      r.Size,
		blockSize: int64(r.BlockSize),
		blocks:    uint64(r.Size / int64(r.BlockSize)),
		created:   r.CreateTime,
		snapshot:  r.SnapshotID,
		eng:       e,
		file:      f,
		log:       e.log.With("volume", r.ID),
		gen:       gen,
		live:      newExtentMap(),
		dirty:     make(map[uint64]struct{}),
		record:    r,
	}
	for s := r.BlockSize; s > 1; s >>= 1 {
		v.shift++
	}
	v.syncer = newGroupSync(v.syncRound)
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
		for _, v := range e.volumes() {
			if v.dirtyLen() == 0 {
				continue
			}
			if err := v.sync(); err != nil {
				e.log.Error("background sync failed", "volume", v.id, "err", err)
			}
		}
	}
}

func (e *Engine) volumes() []*volume {
	e.mu.Lock()
	defer e.mu.Unlock()
	out := make([]*volume, 0, len(e.vols))
	for _, v := range e.vols {
		out = append(out, v)
	}
	return out
}

// Close syncs every volume and releases the data directory. Open volume
// handles become unusable.
func (e *Engine) Close() error {
	e.mu.Lock()
	if e.closed {
		e.mu.Unlock()
		return nil
	}
	e.closed = true
	e.mu.Unlock()
	e.cancel()
	e.wg.Wait()
	var errs []error
	for _, v := range e.volumes() {
		if err := v.sync(); err != nil {
			errs = append(errs, err)
		}
	}
	errs = append(errs, e.closeVolumes(), e.meta.Close(), e.lock.Close())
	return errors.Join(errs...)
}

func (e *Engine) closeVolumes() error {
	var errs []error
	for _, v := range e.volumes() {
		errs = append(errs, v.file.Close())
	}
	return errors.Join(errs...)
}

// OnVolumeRemoved registers fn to be called after a volume is deleted (the
// FUSE layer uses it to drop the file from the kernel's caches).
func (e *Engine) OnVolumeRemoved(fn func(id string)) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.onRemoved = fn
}

func (e *Engine) lookup(id string) (*volume, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closed {
		return nil, ErrClosed
	}
	v, ok := e.vols[id]
	if !ok {
		return nil, fmt.Errorf("%w: %s", ErrVolumeNotFound, id)
	}
	return v, nil
}

// CreateVolume creates an empty, thin-provisioned volume. With a client
// token it is idempotent: the same token and parameters return the volume
// the first call created.
func (e *Engine) CreateVolume(ctx context.Context, p CreateVolumeParams) (VolumeInfo, error) {
	if p.BlockSize == 0 {
		p.BlockSize = DefaultBlockSize
	}
	if err := ValidateGeometry(p.Size, p.BlockSize); err != nil {
		return VolumeInfo{}, err
	}
	if err := ValidateTags(p.Tags); err != nil {
		return VolumeInfo{}, err
	}
	if len(p.ClientToken) > 64 {
		return VolumeInfo{}, fmt.Errorf("%w: client token longer than 64 characters", ErrInvalidParameter)
	}
	digest := paramsDigest(p)

	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closed {
		return VolumeInfo{}, ErrClosed
	}
	if p.ClientToken != "" {
		id, err := e.meta.VolumeByClientToken(p.ClientToken)
		switch {
		case err == nil:
			v, ok := e.vols[id]
			if !ok || v.record.ParamsDigest != digest {
				return VolumeInfo{}, fmt.Errorf("%w: token %q", ErrIdempotentMismatch, p.ClientToken)
			}
			return v.info(), nil
		case !errors.Is(err, meta.ErrNotFound):
			return VolumeInfo{}, err
		}
	}

	r := meta.VolumeRecord{
		ID:           newID("vol"),
		Size:         p.Size,
		BlockSize:    p.BlockSize,
		Generation:   firstGeneration,
		CreateTime:   time.Now().UTC().Truncate(time.Millisecond),
		ClientToken:  p.ClientToken,
		ParamsDigest: digest,
	}
	for _, t := range p.Tags {
		r.Tags = append(r.Tags, meta.Tag{Key: t.Key, Value: t.Value})
	}
	f, err := openOSFile(e.dataPath(r.ID), true)
	if err != nil {
		return VolumeInfo{}, e.diskErr("create data file", err)
	}
	if err := syncDir(filepath.Join(e.dir, "volumes")); err != nil {
		f.Close()
		os.Remove(e.dataPath(r.ID))
		return VolumeInfo{}, e.diskErr("create data file", err)
	}
	if err := e.meta.CreateVolume(r); err == nil {
		err = e.metaSync.sync()
	}
	if err != nil {
		// The data file is removed as an orphan at the next start if
		// the record made it to disk after all... it did not, so: now.
		f.Close()
		os.Remove(e.dataPath(r.ID))
		return VolumeInfo{}, e.diskErr("create volume", err)
	}
	v := e.newVolume(r, f)
	e.vols[r.ID] = v
	e.log.Info("volume created", "volume", r.ID, "size", r.Size, "block_size", r.BlockSize)
	return v.info(), nil
}

func (e *Engine) diskErr(op string, err error) error {
	if isNoSpace(err) {
		return fmt.Errorf("%s: %w: %w", op, ErrNoSpace, err)
	}
	return fmt.Errorf("%s: %w", op, err)
}

// paramsDigest identifies a CreateVolume request for idempotency.
func paramsDigest(p CreateVolumeParams) string {
	h := sha256.New()
	fmt.Fprintf(h, "size=%d\nblock=%d\n", p.Size, p.BlockSize)
	for _, t := range p.Tags {
		fmt.Fprintf(h, "tag=%q=%q\n", t.Key, t.Value)
	}
	return hex.EncodeToString(h.Sum(nil))
}

// DescribeVolumes returns every volume, sorted by ID.
func (e *Engine) DescribeVolumes(ctx context.Context) ([]VolumeInfo, error) {
	vols := e.volumes()
	out := make([]VolumeInfo, 0, len(vols))
	for _, v := range vols {
		out = append(out, v.info())
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
	return v.info(), nil
}

// DeleteVolume deletes a volume that no one has open: its data and
// metadata are gone when it returns.
func (e *Engine) DeleteVolume(ctx context.Context, id string) error {
	v, err := e.lookup(id)
	if err != nil {
		return err
	}
	v.mapMu.Lock()
	if v.opens > 0 {
		v.mapMu.Unlock()
		return fmt.Errorf("%w: %s is open %d time(s)", ErrVolumeInUse, id, v.opens)
	}
	if v.doomed {
		v.mapMu.Unlock()
		return fmt.Errorf("%w: %s", ErrVolumeNotFound, id)
	}
	v.doomed = true
	r := v.record
	v.mapMu.Unlock()
	// Wait out a sync round in flight (the background loop's); rounds
	// that start from now on see doomed and do nothing.
	_ = v.syncer.sync()

	r.Deleting = true
	if err := e.meta.PutVolume(r); err == nil {
		err = e.metaSync.sync()
	}
	if err != nil {
		v.mapMu.Lock()
		v.doomed = false
		v.mapMu.Unlock()
		return fmt.Errorf("delete volume %s: %w", id, err)
	}
	e.mu.Lock()
	delete(e.vols, id)
	fn := e.onRemoved
	e.mu.Unlock()
	v.file.Close()
	if err := e.purge(r); err != nil {
		// The record says Deleting: the next start finishes the job.
		e.log.Error("volume deletion incomplete; it completes at the next start", "volume", id, "err", err)
	}
	if fn != nil {
		fn(id)
	}
	e.log.Info("volume deleted", "volume", id)
	return nil
}

// purge removes a volume's data file and metadata.
func (e *Engine) purge(r meta.VolumeRecord) error {
	if err := os.Remove(e.dataPath(r.ID)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("remove data file: %w", err)
	}
	if err := syncDir(filepath.Join(e.dir, "volumes")); err != nil {
		return err
	}
	if err := e.meta.DeleteVolume(r); err != nil {
		return err
	}
	return e.metaSync.sync()
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
