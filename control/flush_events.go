package control

import (
	"crypto/sha256"
	"encoding/hex"
	"strings"

	"github.com/cowvol/cowvol/cow"
)

// DescribeVolumeStatus reports, besides a volume's faults, an event per
// snapshot of the volume whose flush to the snapshot store keeps failing
// and is being retried (the engine says so in the pending snapshot's
// status message). Such an event does not impair the volume, whose I/O is
// unaffected: it says that the snapshot is not safe in the store yet. Its
// notBefore is the snapshot's start time (when the flush began); it ends
// when the snapshot completes or fails.

// eventFlushRetrying is the event type of a snapshot stuck retrying its flush.
const eventFlushRetrying = "snapshot-flush-retrying"

// flushRetryPrefix begins the status message of a pending snapshot whose
// flush attempts fail (cow's flusher: "attempt N failed; retrying: ...").
const flushRetryPrefix = "attempt "

// flushEvents returns, by volume ID, the events of the snapshots in snaps
// that are pending and retrying their flush.
func flushEvents(snaps []cow.SnapshotInfo) map[string][]VolumeStatusEvent {
	out := map[string][]VolumeStatusEvent{}
	for _, si := range snaps {
		if si.State != cow.SnapshotPending || !strings.HasPrefix(si.StatusMessage, flushRetryPrefix) {
			continue
		}
		h := sha256.Sum256([]byte(si.ID + "\x00flush"))
		out[si.VolumeID] = append(out[si.VolumeID], VolumeStatusEvent{
			EventID:   "evol-" + hex.EncodeToString(h[:9])[:17],
			EventType: eventFlushRetrying,
			Description: "snapshot " + si.ID + " of this volume is not in the snapshot store yet: its flush " + si.StatusMessage +
				" (the snapshot stays pending; the volume's I/O is not affected)",
			NotBefore: Timestamp{si.StartTime},
		})
	}
	return out
}
