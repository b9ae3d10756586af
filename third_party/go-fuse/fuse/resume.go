// cowvol patch: this whole file. Takeover of a live FUSE connection: a
// process serves a connection whose INIT an earlier process answered. See
// PATCHES.md at the module root.

package fuse

import (
	"fmt"
	"unsafe"
)

// SessionState is what INIT negotiated on a FUSE connection: the kernel's
// INIT request and the server's reply. Pass it as MountOptions.Resume to
// serve the same connection from another process after the first one died
// or exited. All its fields are fixed-size integers, so it encodes to JSON
// (encoding/json) and back without loss; InitOut's unexported reserved tail
// is not encoded, and it is always zero.
type SessionState struct {
	In  InitIn
	Out InitOut
}

// SessionState returns what INIT negotiated on this server's connection, or
// the state it resumed with (MountOptions.Resume).
func (ms *Server) SessionState() SessionState {
	return SessionState{In: ms.kernelSettings, Out: ms.initOut}
}

// checkResume refuses a Resume that this server would not serve exactly as
// the server that answered INIT did: the mountpoint must be an inherited
// "/dev/fd/N" and the options must negotiate the same protocol version,
// capabilities and request size (a MaxWrite of 0 takes the negotiated one).
// Tunables only the kernel uses (read-ahead, background requests) may
// differ: the kernel keeps the negotiated values.
func checkResume(mountPoint string, o *MountOptions) error {
	st := o.Resume
	if parseFuseFd(mountPoint) < 0 {
		return fmt.Errorf("resume: mountpoint %q is not /dev/fd/N, the fd of an initialised connection", mountPoint)
	}
	if st.In.Major != _FUSE_KERNEL_VERSION || st.In.Minor < _MINIMUM_MINOR_VERSION {
		return fmt.Errorf("resume: kernel protocol %d.%d not supported", st.In.Major, st.In.Minor)
	}
	want := (&protocolServer{opts: o}).negotiateInit(&st.In)
	got := st.Out
	if want.Major != got.Major || want.Minor != got.Minor || want.Flags64() != got.Flags64() ||
		want.MaxWrite != got.MaxWrite || want.MaxPages != got.MaxPages {
		return fmt.Errorf("resume: options negotiate protocol %d.%d flags %#x max_write %d max_pages %d, "+
			"the connection has %d.%d flags %#x max_write %d max_pages %d",
			want.Major, want.Minor, want.Flags64(), want.MaxWrite, want.MaxPages,
			got.Major, got.Minor, got.Flags64(), got.MaxWrite, got.MaxPages)
	}
	return nil
}

// resume stands in for reading and answering INIT when the connection was
// initialised by an earlier server: it takes the negotiated state and then
// does what handleInit does after INIT.
func (ms *Server) resume() Status {
	ms.kernelSettings = ms.opts.Resume.In
	ms.initOut = ms.opts.Resume.Out
	ms.negotiatedFlags = ms.initOut.Flags64()
	if ms.kernelSettings.Minor >= 13 {
		ms.setSplice()
	}
	ms.fileSystem.Init(ms)
	return OK
}

// NotifyResend asks the kernel to queue again every request that was read
// from this connection but not answered, such as those a killed server was
// working on. Each comes back with its Unique's bit 63 set
// (FUSE_UNIQUE_RESEND); the reply goes to that Unique like any other.
//
// Call it before Serve: the kernel also re-queues requests this server has
// read and not yet answered, and the reply to the first copy then fails
// with ENOENT while the copy is handled again.
//
// It returns ENOSYS if the kernel did not offer CAP_HAS_RESEND in its INIT
// request. That flag announces the kernel's support: the kernel does not
// need the server to echo it, and go-fuse's INIT reply does not.
func (ms *Server) NotifyResend() Status {
	if ms.kernelSettings.Flags64()&CAP_HAS_RESEND == 0 {
		return ENOSYS
	}
	hdr := OutHeader{
		Length: uint32(sizeOfOutHeader),
		Status: -NOTIFY_RESEND, // a notification code travels positive in the error field
		Unique: 0,              // 0 marks a notification
	}
	_, errno := ms.fuseFD.writev([][]byte{unsafe.Slice((*byte)(unsafe.Pointer(&hdr)), sizeOfOutHeader)})
	return Status(errno)
}
