package main

import (
	"fmt"
	"io"
	"os"
	"sync"
	"time"
)

// transferProgress shows how far an export or import is, as a line
// redrawn in place, when its writer is a terminal; otherwise it shows
// nothing.
type transferProgress struct {
	w     io.Writer
	label string
	total int
	tty   bool
	// mu guards the fields that follow.
	mu    sync.Mutex
	n     int
	drawn time.Time
}

func newTransferProgress(w io.Writer, label string, total int) *transferProgress {
	p := &transferProgress{w: w, label: label, total: total}
	if f, ok := w.(*os.File); ok {
		p.tty = isTerminal(f.Fd())
	}
	p.draw(true)
	return p
}

// add counts one block done.
func (p *transferProgress) add() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.n++
	p.draw(p.n == p.total)
}

// draw redraws the line at most ten times a second (or now, when force).
// p.mu is held, or p is not shared yet.
func (p *transferProgress) draw(force bool) {
	if !p.tty || (!force && time.Since(p.drawn) < 100*time.Millisecond) {
		return
	}
	p.drawn = time.Now()
	pct := 100
	if p.total > 0 {
		pct = p.n * 100 / p.total
	}
	fmt.Fprintf(p.w, "\r%s: %d/%d blocks of 512 KiB (%d%%)", p.label, p.n, p.total, pct)
}

// done ends the line.
func (p *transferProgress) done() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.tty {
		p.draw(true)
		fmt.Fprintln(p.w)
	}
}
