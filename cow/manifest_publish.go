package cow

import (
	"context"
	"errors"
	"fmt"
	"log/slog"

	"github.com/cowvol/cowvol/cow/lineage"
	"github.com/cowvol/cowvol/cow/snapfmt"
	"github.com/cowvol/cowvol/cow/snapstore"
)

// manifestPublisher is the one way a snapshot's manifest reaches its store,
// for flushes and copies alike. A manifest is immutable once stored: other
// daemons may have read (and cached) it. So, before any upload, adopt
// looks for one an earlier attempt stored:
//
//   - none: this attempt uploads and then publishes its own, last, under a
//     lease that is still valid;
//   - one that decodes, opens with the snapshot's lineage and names this
//     snapshot of this volume: the earlier attempt got that far, and it
//     is adopted as it is (the snapshot is complete in the store's eyes);
//   - a valid manifest that is not that (it names another snapshot or
//     volume, or is another lineage's): a permanent error naming the key,
//     the store and what is wrong; the flush never stores its own over it.
//     (The failed snapshot's clean-up leaves that object alone, though it
//     deletes any manifest of its own; no reader accepts a manifest under
//     another snapshot's key.)
//   - one that does not decode (an earlier attempt's put torn midway, on
//     a store whose puts are not atomic): no reader can have used it, as
//     every reader checks the checksum; it is logged, with the key and
//     the reason, and replaced by this attempt's.
type manifestPublisher struct {
	log   *slog.Logger
	st    snapstore.Store
	s     *snapshot
	k     *lineage.Keys
	lease *flushLease
	// sent: this attempt sent its manifest (a failed Put may have landed
	// too), which names the attempt's packs: they must not be discarded.
	sent bool
}

// errForeignManifest: the manifest stored under a snapshot's key is not
// one this snapshot's flush can adopt.
var errForeignManifest = errors.New("a manifest this snapshot cannot adopt is stored under its key")

// adopt returns the manifest an earlier attempt stored, and its bytes; nil
// if there is none.
func (p *manifestPublisher) adopt(ctx context.Context) (*snapfmt.Manifest, []byte, error) {
	r := p.s.record()
	key := snapfmt.ManifestKey(r.ID)
	mb, err := p.st.Get(ctx, key)
	if err == nil {
		var m *snapfmt.Manifest
		if m, err = snapfmt.DecodeManifest(mb); err == nil {
			return p.adoptable(key, m, mb)
		}
	}
	switch {
	case errors.Is(err, snapstore.ErrNotFound):
		return nil, nil, nil
	case errors.Is(err, snapstore.ErrCorrupt) || errors.Is(err, snapfmt.ErrCorrupt):
		p.log.Warn("a stored manifest of an earlier attempt does not decode; storing it again", "snapshot", r.ID, "key", key, "store", p.st.String(), "err", err)
		return nil, nil, nil
	default:
		return nil, nil, fmt.Errorf("look for the manifest of an earlier attempt: %w", err)
	}
}

// adoptable returns m, a valid manifest stored under this snapshot's key,
// if it is this snapshot's; otherwise a permanent error.
func (p *manifestPublisher) adoptable(key string, m *snapfmt.Manifest, mb []byte) (*snapfmt.Manifest, []byte, error) {
	r := p.s.record()
	err := snapfmt.OpenManifest(p.k.Format(), m)
	if err == nil && (m.SnapshotID != r.ID || m.VolumeID != r.VolumeID) {
		err = fmt.Errorf("it names snapshot %s of %s", m.SnapshotID, m.VolumeID)
	}
	if err != nil {
		return nil, nil, fmt.Errorf("%w (%w): %s in %s: %w", errPermanent, errForeignManifest, key, p.st, err)
	}
	p.log.Info("manifest stored by an earlier attempt; adopting it", "snapshot", r.ID)
	return m, mb, nil
}

// publish encodes m and stores it, last: until it is durable, no reader
// sees the snapshot. Not under a lease that may be dead: another daemon's
// collector may have taken what it protected.
func (p *manifestPublisher) publish(ctx context.Context, m *snapfmt.Manifest) (*snapfmt.Manifest, []byte, error) {
	mb, err := snapfmt.EncodeManifest(p.k.Format(), m)
	if err != nil {
		return nil, nil, err
	}
	if err := p.lease.valid(); err != nil {
		return nil, nil, err
	}
	p.s.manifestSent.Store(true)
	p.sent = true
	if err := p.st.Put(ctx, snapfmt.ManifestKey(m.SnapshotID), mb); err != nil {
		return nil, nil, fmt.Errorf("put manifest: %w", err)
	}
	return m, mb, nil
}
