package integration

import (
	"bufio"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"syscall"
	"testing"
	"time"
)

// The qemu-storage-daemon peer of make bench: a qcow2 image exported over
// FUSE (the tool one would use otherwise for snapshot-capable block
// files), measured by the same fio jobs as the plain file and cowvol, and
// its internal snapshots (blockdev-snapshot-internal-sync over QMP) timed
// as cowvol's CreateSnapshot is.

const qemuStorageDaemon = "/usr/bin/qemu-storage-daemon"

// qemuPeer is a running qemu-storage-daemon exporting one qcow2 image.
type qemuPeer struct {
	export string // the FUSE-exported file
	qmp    string // the QMP socket
	cmd    *exec.Cmd
}

// startQemuPeer creates a size qcow2 image in dir and exports it over
// FUSE with qemu-storage-daemon (the image's file opened O_DIRECT with
// native AIO, as cowvol's fio jobs are O_DIRECT); stopped at cleanup.
func startQemuPeer(b *testing.B, dir, size string) *qemuPeer {
	for _, bin := range []string{qemuStorageDaemon, "/usr/bin/qemu-img"} {
		if _, err := os.Stat(bin); err != nil {
			b.Fatalf("%s is not installed (make bench installs qemu-system-common and qemu-utils)", bin)
		}
	}
	img := filepath.Join(dir, "peer.qcow2")
	p := &qemuPeer{export: filepath.Join(dir, "peer.export"), qmp: filepath.Join(b.TempDir(), "qmp.sock")}
	if out, err := exec.Command("/usr/bin/qemu-img", "create", "-q", "-f", "qcow2", img, size).CombinedOutput(); err != nil {
		b.Fatalf("qemu-img create: %v\n%s", err, out)
	}
	b.Cleanup(func() { os.Remove(img) })
	if err := os.WriteFile(p.export, nil, 0o600); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { os.Remove(p.export) })
	log, err := os.Create(filepath.Join(b.TempDir(), "qsd.log"))
	if err != nil {
		b.Fatal(err)
	}
	p.cmd = exec.Command(qemuStorageDaemon,
		"--blockdev", "driver=file,node-name=file0,filename="+img+",cache.direct=on,aio=native",
		"--blockdev", "driver=qcow2,node-name=qcow0,file=file0",
		"--export", "type=fuse,id=exp0,node-name=qcow0,mountpoint="+p.export+",writable=on",
		"--chardev", "socket,id=qmp0,path="+p.qmp+",server=on,wait=off",
		"--monitor", "chardev=qmp0")
	p.cmd.Stdout, p.cmd.Stderr = log, log
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := p.cmd.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		p.cmd.Process.Signal(syscall.SIGTERM)
		p.cmd.Wait()
		log.Close()
	})
	// Ready once the export is mounted over the file: it has the image's size.
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if fi, err := os.Stat(p.export); err == nil && fi.Size() > 0 {
			break
		}
		if time.Now().After(deadline) {
			out, _ := os.ReadFile(log.Name())
			b.Fatalf("qemu-storage-daemon did not export %s:\n%s", img, out)
		}
	}
	return p
}

// qmpConn is a QMP session, past capabilities negotiation.
type qmpConn struct {
	c net.Conn
	r *bufio.Reader
}

func (p *qemuPeer) dialQMP(b *testing.B) *qmpConn {
	c, err := net.Dial("unix", p.qmp)
	if err != nil {
		b.Fatal(err)
	}
	q := &qmpConn{c: c, r: bufio.NewReader(c)}
	if _, err := q.r.ReadBytes('\n'); err != nil { // the greeting
		b.Fatal(err)
	}
	q.execute(b, "qmp_capabilities", nil)
	return q
}

// execute runs one QMP command and waits for its answer (events skipped).
func (q *qmpConn) execute(b *testing.B, cmd string, args any) {
	req, _ := json.Marshal(map[string]any{"execute": cmd, "arguments": args})
	if args == nil {
		req, _ = json.Marshal(map[string]any{"execute": cmd})
	}
	if _, err := q.c.Write(append(req, '\n')); err != nil {
		b.Fatal(err)
	}
	for {
		line, err := q.r.ReadBytes('\n')
		if err != nil {
			b.Fatalf("QMP %s: %v", cmd, err)
		}
		var ans struct {
			Return json.RawMessage `json:"return"`
			Error  *struct {
				Class, Desc string
			} `json:"error"`
		}
		if err := json.Unmarshal(line, &ans); err != nil {
			b.Fatalf("QMP %s: %v: %s", cmd, err, line)
		}
		if ans.Error != nil {
			b.Fatalf("QMP %s: %s: %s", cmd, ans.Error.Class, ans.Error.Desc)
		}
		if ans.Return != nil {
			return
		}
	}
}

// snapshotFigures fills 1 GiB of the export, then times 20 internal
// snapshots over QMP, as snapshotFigures times cowvol's CreateSnapshot.
func (p *qemuPeer) snapshotFigures(b *testing.B, r *benchReport) {
	fill(b, p.export, 1)
	q := p.dialQMP(b)
	defer q.c.Close()
	var lats []float64
	for i := range 20 {
		t0 := time.Now()
		q.execute(b, "blockdev-snapshot-internal-sync", map[string]string{"device": "qcow0", "name": fmt.Sprintf("bench-%d", i)})
		lats = append(lats, float64(time.Since(t0).Microseconds())/1000)
	}
	sort.Float64s(lats)
	r.add("qemu: internal snapshot ms median (1 GiB written)", lats[len(lats)/2])
	r.add("qemu: internal snapshot ms max (1 GiB written)", lats[len(lats)-1])
}

// BenchmarkQemuPeer runs the peer alone (make bench runs it inside
// BenchmarkCowvol): the fio jobs on its export and its snapshot figures.
// go test ./integration -run '^$' -bench QemuPeer -benchtime 1x.
func BenchmarkQemuPeer(b *testing.B) {
	requirePrereqs(b)
	runtimeSec := envInt("COWVOL_BENCH_RUNTIME", 8)
	r := &benchReport{Machine: machine(), Figures: map[string]float64{}}
	p := startQemuPeer(b, b.TempDir(), "2G")
	for _, j := range []fioJob{{"seq write 1M qd4", "write", "1M", 4, false}, {"rand write 4k+fsync qd1", "randwrite", "4k", 1, true}} {
		r.add("qemu: "+j.name+" "+j.unit(), j.run(b, p.export, runtimeSec))
	}
	p.snapshotFigures(b, r)
	r.print(os.Stdout)
}
