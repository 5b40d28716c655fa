package processor

import "go.uber.org/zap"

// useStateSource drops the local state when it was built from another
// changelog than the configured one (a rescale writes a new changelog with
// another partition count): its offsets are the other topic's, so a
// restore from them would mix two layouts. Every partition restores from
// the new changelog instead.
func (p *Processor) useStateSource() error {
	dropped, err := p.store.UseSource(p.cfg.Topics.Changelog)
	if dropped {
		p.log.Warn("the local state was built from another changelog (a rescale?); dropped, every partition restores from the configured one",
			zap.String("changelog", p.cfg.Topics.Changelog))
	}
	return err
}
