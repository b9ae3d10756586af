package cow

import (
	"sync"
	"time"
)

// phaseTimes adds up, by phase, where a start (or a volume's map load)
// spends its time, for the log: a successor's start is the stall every
// application on the volumes sees, so where it goes must be visible.
type phaseTimes struct {
	mu    sync.Mutex
	order []string
	d     map[string]time.Duration
}

// add counts the time since t0 to phase and returns now, the start of
// the next phase.
func (p *phaseTimes) add(phase string, t0 time.Time) time.Time {
	now := time.Now()
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.d == nil {
		p.d = map[string]time.Duration{}
	}
	if _, ok := p.d[phase]; !ok {
		p.order = append(p.order, phase)
	}
	p.d[phase] += now.Sub(t0)
	return now
}

// attrs are the phases as slog attributes, in the order first seen.
func (p *phaseTimes) attrs() []any {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make([]any, 0, 2*len(p.order))
	for _, ph := range p.order {
		out = append(out, ph, p.d[ph].Round(time.Microsecond))
	}
	return out
}
