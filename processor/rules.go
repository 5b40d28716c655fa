package processor

import "github.com/triggerd/triggerd/rules"

// SetRules replaces the rules every partition worker evaluates. It is safe
// to call while the processor runs (from a SIGHUP handler or a file
// watcher): a worker loads the rules once per record or timer, so one
// evaluation never mixes two rule sets. A nil s is ignored.
func (p *Processor) SetRules(s *rules.Set) {
	if s != nil {
		p.rules.Store(s)
		p.m.rulesReloads.WithLabelValues("applied").Inc()
	}
}

// RulesRejected counts a new rules file that did not compile (the running
// rules stay in force), so that an alert can tell the rule author.
func (p *Processor) RulesRejected() {
	p.m.rulesReloads.WithLabelValues("rejected").Inc()
}

// Rules returns the rules in force.
func (p *Processor) Rules() *rules.Set { return p.rules.Load() }
