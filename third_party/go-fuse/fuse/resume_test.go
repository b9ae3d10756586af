// cowvol patch: this whole file. Tests of resume.go that need no mount; the
// takeover itself is tested end to end in cowvol's integration package.

package fuse

import (
	"encoding/json"
	"strings"
	"testing"
	"unsafe"
)

// fillBytes sets every byte of *p to a distinct non-zero value.
func fillBytes[T any](p *T) {
	b := unsafe.Slice((*byte)(unsafe.Pointer(p)), unsafe.Sizeof(*p))
	for i := range b {
		b[i] = byte(i*7 + 1)
	}
}

func TestSessionStateJSONRoundTrip(t *testing.T) {
	var st SessionState
	fillBytes(&st.In)
	fillBytes(&st.Out)
	st.Out._Unused = [11]uint16{} // reserved, never encoded, always zero
	data, err := json.Marshal(st)
	if err != nil {
		t.Fatal(err)
	}
	var got SessionState
	if err := json.Unmarshal(data, &got); err != nil {
		t.Fatal(err)
	}
	if got != st {
		t.Fatalf("round trip changed the state:\n got %+v\nwant %+v\njson %s", got, st, data)
	}
}

func TestCheckResume(t *testing.T) {
	in := InitIn{Major: 7, Minor: 45, Flags: uint32(CAP_ASYNC_READ | CAP_BIG_WRITES | CAP_MAX_PAGES), Flags2: uint32(CAP_HAS_RESEND >> 32)}
	negotiated := func(maxWrite int) *MountOptions {
		o := &MountOptions{MaxWrite: maxWrite}
		o.setDefaults(NewDefaultRawFileSystem())
		return o
	}
	out := (&protocolServer{opts: negotiated(1 << 17)}).negotiateInit(&in)
	for _, tc := range []struct {
		name       string
		mountPoint string
		opts       MountOptions
		in         InitIn
		wantErr    string
	}{
		{name: "same options", mountPoint: "/dev/fd/3", opts: MountOptions{MaxWrite: 1 << 17}, in: in},
		{name: "MaxWrite 0 takes the negotiated one", mountPoint: "/dev/fd/3", in: in},
		{name: "directory", mountPoint: "/mnt", in: in, wantErr: "not /dev/fd/N"},
		{name: "larger MaxWrite", mountPoint: "/dev/fd/3", opts: MountOptions{MaxWrite: 1 << 18}, in: in, wantErr: "max_write 262144"},
		{name: "other capabilities", mountPoint: "/dev/fd/3", opts: MountOptions{SyncRead: true}, in: in, wantErr: "flags"},
		{name: "old kernel", mountPoint: "/dev/fd/3", in: InitIn{Major: 7, Minor: 5}, wantErr: "protocol 7.5"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := tc.opts
			o.Resume = &SessionState{In: tc.in, Out: out}
			o.setDefaults(NewDefaultRawFileSystem())
			err := checkResume(tc.mountPoint, &o)
			if tc.wantErr == "" && err != nil {
				t.Fatalf("checkResume: %v", err)
			}
			if tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)) {
				t.Fatalf("checkResume: %v, want an error with %q", err, tc.wantErr)
			}
		})
	}
}

func TestNotifyResendNeedsKernelSupport(t *testing.T) {
	ms := &Server{}
	if st := ms.NotifyResend(); st != ENOSYS {
		t.Fatalf("NotifyResend without CAP_HAS_RESEND: %v, want ENOSYS", st)
	}
}
