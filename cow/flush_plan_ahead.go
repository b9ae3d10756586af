package cow

import "errors"

// errPlanClosed: a flush asked its plan for a segment after closing it.
var errPlanClosed = errors.New("flush plan closed")

// planAhead makes a flush's plan one segment ahead of its upload: a
// goroutine reads the next segment's changes from the metadata store while
// the workers hash, compress and store the current one's blocks, where the
// flush used to stop its workers for each segment's reads (at 4 KiB blocks a
// segment is 256 MiB, its changes 65536 records). It holds at most one
// segment's changes beyond the one being uploaded (the channel is
// unbuffered: the goroutine plans one and waits until it is taken).
type planAhead struct {
	next chan plannedSegment
	stop chan struct{}   // closed by close: the goroutine returns
	done chan struct{}   // closed when the goroutine has returned
	last *plannedSegment // the end or the error, once returned
}

// plannedSegment is what flushPlan.nextSegment returned.
type plannedSegment struct {
	sp  segmentPlan
	ok  bool
	err error
}

// startPlanAhead runs plan p in a goroutine of its own, owned by the
// returned planAhead: its caller calls close.
func startPlanAhead(p *flushPlan) *planAhead {
	a := &planAhead{next: make(chan plannedSegment), stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(a.done)
		for {
			sp, ok, err := p.nextSegment()
			select {
			case a.next <- plannedSegment{sp, ok, err}:
			case <-a.stop:
				return
			}
			if !ok || err != nil {
				return
			}
		}
	}()
	return a
}

// nextSegment returns the next segment to write; ok is false at the end.
// After the end or an error it keeps returning the same. One goroutine
// calls it (the flush's).
func (a *planAhead) nextSegment() (segmentPlan, bool, error) {
	if a.last != nil {
		return a.last.sp, a.last.ok, a.last.err
	}
	var ps plannedSegment
	select {
	case ps = <-a.next:
	case <-a.done:
		// The goroutine returns before the end only when closed.
		ps = plannedSegment{err: errPlanClosed}
	}
	if !ps.ok || ps.err != nil {
		a.last = &ps
	}
	return ps.sp, ps.ok, ps.err
}

// close stops the goroutine and waits for it.
func (a *planAhead) close() {
	close(a.stop)
	<-a.done
}
