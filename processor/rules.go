package processor

import (
	"sync/atomic"
	"unsafe"

	"github.com/triggerd/triggerd/rules"
)

// SetRules replaces the rules every partition worker evaluates. It is safe
// to call while the processor runs (from a SIGHUP handler or a file
// watcher): a worker loads the rules once per record or timer, so one
// evaluation never mixes two rule sets. A nil s is ignored.
//
// The rules live in Processor.rules, a plain pointer set by New; until that
// field becomes an atomic.Pointer[rules.Set], every access after New goes
// through these two functions, which treat it as one.
func (p *Processor) SetRules(s *rules.Set) {
	if s == nil {
		return
	}
	atomic.StorePointer((*unsafe.Pointer)(unsafe.Pointer(&p.rules)), unsafe.Pointer(s))
}

// Rules returns the rules in force.
func (p *Processor) Rules() *rules.Set {
	return (*rules.Set)(atomic.LoadPointer((*unsafe.Pointer)(unsafe.Pointer(&p.rules))))
}
