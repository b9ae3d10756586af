package meta

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// The open check reads every block of every table and verifies its
// checksum: a full read of the metadata, at every start. A successor that
// takes over after a crash or an upgrade stalls every application on the
// volumes meanwhile, so the check remembers, in a small file beside the
// store (<dir>.verified), the tables it verified in this boot, and verifies
// again only tables it does not know.
//
// Why skipping a table verified earlier in the same boot is sound: Badger
// writes a table once, syncs it, and never writes it again (a flush or a
// compaction writes new tables and deletes old ones). A table file whose
// inode, size and change time are those it had when this boot's check read
// all of it has not been written to since through the file system (ctime
// cannot be set back by anyone: every write, truncate or utime moves it),
// so it holds what was verified. What the page cache no longer holds comes
// back from the disk as it was written, or, if the disk garbled it, fails
// the checksum Badger verifies on every block it reads (OnBlockRead): an
// error, never records quietly dropped. Everything else the check does
// (the MANIFEST, every memtable log, missing and unlisted tables, the store
// records, the witness) it still does on every start; each remembered table
// is still opened, its index verified, and read where the check needs it.
//
// Where it is not sound: across a reboot. A reset may lose or garble what
// only the page cache held, a directory restored or copied from elsewhere
// brings files the stamps say nothing about, and the kernel's boot ID is
// the only thing that tells this boot's stamps from another's. So the file
// records the boot it was made in, and a start in another boot (or with a
// file that fails its CRC) verifies every table.

const verifiedMagic = "cowvol verified tables v1"

// tableStamp identifies one version of a table file.
type tableStamp struct {
	ino, size uint64
	ctime     int64 // nanoseconds
}

// verifiedPath is where the store in dir remembers its verified tables.
func verifiedPath(dir string) string { return filepath.Clean(dir) + ".verified" }

// stampOf stamps the open file fd.
func stampOf(fd int) (tableStamp, error) {
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return tableStamp{}, err
	}
	return tableStamp{ino: st.Ino, size: uint64(st.Size), ctime: st.Ctim.Nano()}, nil
}

// readVerified returns the tables verified in boot, by table ID: none if
// the file is missing, damaged, or from another boot.
func readVerified(path, boot string) map[uint64]tableStamp {
	out := map[uint64]tableStamp{}
	b, err := os.ReadFile(path)
	if err != nil || boot == "" || len(b) < 4 {
		return out
	}
	body, sum := b[:len(b)-4], binary.BigEndian.Uint32(b[len(b)-4:])
	if crc32.Checksum(body, crc32c) != sum {
		return out
	}
	sc := bufio.NewScanner(bytes.NewReader(body))
	if !sc.Scan() || sc.Text() != verifiedMagic+" "+boot {
		return out
	}
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) != 4 {
			return map[uint64]tableStamp{}
		}
		var n [4]uint64
		for i := range f {
			if n[i], err = strconv.ParseUint(f[i], 10, 64); err != nil {
				return map[uint64]tableStamp{}
			}
		}
		out[n[0]] = tableStamp{ino: n[1], size: n[2], ctime: int64(n[3])}
	}
	return out
}

// writeVerified records tables as verified in boot, replacing the file
// whole (a torn one fails its CRC and is ignored). It is not synced: a
// crash of the machine changes the boot, which voids it anyway.
func writeVerified(path, boot string, tables map[uint64]tableStamp) error {
	if boot == "" {
		return nil
	}
	ids := make([]uint64, 0, len(tables))
	for id := range tables {
		ids = append(ids, id)
	}
	sort.Slice(ids, func(i, j int) bool { return ids[i] < ids[j] })
	var b bytes.Buffer
	fmt.Fprintf(&b, "%s %s\n", verifiedMagic, boot)
	for _, id := range ids {
		st := tables[id]
		fmt.Fprintf(&b, "%d %d %d %d\n", id, st.ino, st.size, st.ctime)
	}
	out := binary.BigEndian.AppendUint32(b.Bytes(), crc32.Checksum(b.Bytes(), crc32c))
	tmp := path + ".new"
	if err := os.WriteFile(tmp, out, 0o600); err != nil {
		return fmt.Errorf("meta: record verified tables: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("meta: record verified tables: %w", err)
	}
	return nil
}
