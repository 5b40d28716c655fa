package main

import (
	"container/heap"
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/lovoo/goka"
)

// delayer holds each partition's checks until the group's watermark for
// the partition passes their due time, then emits them into the checks
// stream. Its heaps are not durable (a crash loses pending checks); the
// comparison favours goka there.
type delayer struct {
	mu     sync.Mutex
	heaps  []checkHeap // per partition
	clocks *clocks
	counts *counts
}

type pendingCheck struct {
	key string
	c   check
}

type checkHeap []pendingCheck

func (h checkHeap) Len() int           { return len(h) }
func (h checkHeap) Less(i, j int) bool { return h[i].c.Due < h[j].c.Due }
func (h checkHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *checkHeap) Push(x any)        { *h = append(*h, x.(pendingCheck)) }
func (h *checkHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}

func newDelayer(k *clocks, n *counts) *delayer {
	return &delayer{heaps: make([]checkHeap, len(k.parts)), clocks: k, counts: n}
}

func (d *delayer) add(p int32, key string, c *check) {
	d.mu.Lock()
	defer d.mu.Unlock()
	heap.Push(&d.heaps[p], pendingCheck{key, *c})
}

// tick emits the due checks every 100 ms. A check is due once the
// partition's watermark is past its due time: every input record of the
// partition up to then has been processed, and the watermark never goes
// back, so the group decides it when it arrives.
func (d *delayer) tick(ctx context.Context, em *goka.Emitter) error {
	t := time.NewTicker(100 * time.Millisecond)
	defer t.Stop()
	var due []pendingCheck
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		due = due[:0]
		d.mu.Lock()
		for p := range d.heaps {
			h := &d.heaps[p]
			if h.Len() == 0 {
				continue
			}
			w := d.clocks.watermark(int32(p))
			for h.Len() > 0 && (*h)[0].c.Due < w {
				due = append(due, heap.Pop(h).(pendingCheck))
			}
		}
		d.mu.Unlock()
		for i := range due {
			if _, err := em.Emit(due[i].key, &due[i].c); err != nil {
				return fmt.Errorf("emit check: %w", err)
			}
		}
		d.counts.released.Add(int64(len(due)))
	}
}
