package rescale

import (
	"fmt"
	"sync"
	"time"
)

// reporter prints a phase's progress every ProgressEvery: offsets read of
// total, customers moved, the rate and the time left.
type reporter struct {
	mu        sync.Mutex
	read, cus int64
	done      chan struct{}
	wg        sync.WaitGroup
}

func (r *run) reporter(phase string, total int64) *reporter {
	rep := &reporter{done: make(chan struct{})}
	if r.opt.Progress == nil {
		return rep
	}
	started := time.Now()
	rep.wg.Add(1)
	go func() {
		defer rep.wg.Done()
		t := time.NewTicker(r.opt.ProgressEvery)
		defer t.Stop()
		for {
			select {
			case <-rep.done:
				return
			case <-t.C:
			}
			rep.mu.Lock()
			read, cus := rep.read, rep.cus
			rep.mu.Unlock()
			secs := time.Since(started).Seconds()
			line := fmt.Sprintf("rescale: %s: %d offsets read", phase, read)
			if total > 0 {
				line = fmt.Sprintf("rescale: %s: %d of %d offsets (%.0f%%), customers moved %d (%.0f/s)",
					phase, read, total, 100*float64(read)/float64(total), cus, float64(cus)/max(secs, 1e-9))
				if read > 0 {
					eta := time.Duration(float64(total-read) / float64(read) * secs * float64(time.Second))
					line += fmt.Sprintf(", ETA %s", eta.Round(time.Second))
				}
			}
			fmt.Fprintln(r.opt.Progress, line)
		}
	}()
	return rep
}

func (rep *reporter) set(read int64) {
	rep.mu.Lock()
	rep.read = read
	rep.mu.Unlock()
}

func (rep *reporter) customers(n int64) {
	rep.mu.Lock()
	rep.cus = n
	rep.mu.Unlock()
}

func (rep *reporter) stop() {
	close(rep.done)
	rep.wg.Wait()
}
