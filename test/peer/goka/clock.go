package main

import (
	"errors"
	"fmt"
	"log"
	"sync"
	"time"

	"github.com/IBM/sarama"
)

// clocks is the group's event time per partition (a watermark): no input
// record of the partition with an earlier event time can still come. Goka
// hands a partition's inputs over in arrival order, so the three input
// topics of one partition are read side by side at their own pace; each is
// in event-time order. The watermark is the lowest of the latest event
// times the inputs have brought, leaving out an input that has been read
// up to its high watermark (nothing of it is pending: the end of a
// backlog, a quiet partition; the high watermarks are polled). It never
// goes back: a record appended later with an older event time is late.
type clocks struct {
	inputs []string
	parts  []*partClock
}

// partClock is one partition's watermark and what it is made of, per
// input (the order of clocks.inputs). The partition's goka goroutine
// writes it, the delayer and the high-watermark poller read it.
type partClock struct {
	mu     sync.Mutex
	latest []int64 // event time, ms; 0 before the input's first record
	next   []int64 // the next offset to read
	hwm    []int64 // the input's high watermark; -1 until polled
	w      int64   // the watermark, ms
}

func newClocks(partitions int32, inputs ...string) *clocks {
	k := &clocks{inputs: inputs, parts: make([]*partClock, partitions)}
	for p := range k.parts {
		pc := &partClock{latest: make([]int64, len(inputs)), next: make([]int64, len(inputs)), hwm: make([]int64, len(inputs))}
		for i := range pc.hwm {
			pc.hwm[i] = -1
		}
		k.parts[p] = pc
	}
	return k
}

func (k *clocks) input(topic string) int {
	for i, in := range k.inputs {
		if in == topic {
			return i
		}
	}
	return -1
}

// observe records the record at offset of input topic in partition p with
// event time t, and returns the partition's watermark and how far (ms) the
// latest event time its inputs have brought is ahead of it.
func (k *clocks) observe(p int32, topic string, offset int64, t time.Time) (w, lag int64) {
	pc := k.parts[p]
	pc.mu.Lock()
	defer pc.mu.Unlock()
	if i := k.input(topic); i >= 0 {
		pc.latest[i] = max(pc.latest[i], t.UnixMilli())
		pc.next[i] = offset + 1
	}
	w = pc.advance()
	if w > 0 { // else not every input has brought a record yet
		for _, at := range pc.latest {
			lag = max(lag, at-w)
		}
	}
	return w, lag
}

// watermark returns partition p's watermark, advanced by what the poller
// has learnt since the last record.
func (k *clocks) watermark(p int32) int64 {
	pc := k.parts[p]
	pc.mu.Lock()
	defer pc.mu.Unlock()
	return pc.advance()
}

func (pc *partClock) advance() int64 {
	lo, hi, pending := int64(-1), int64(0), false
	for i := range pc.latest {
		hi = max(hi, pc.latest[i])
		if pc.hwm[i] >= 0 && pc.next[i] >= pc.hwm[i] {
			continue // read up to its end: it holds nothing back
		}
		if !pending || pc.latest[i] < lo {
			lo = pc.latest[i]
		}
		pending = true
	}
	if !pending {
		lo = hi
	}
	pc.w = max(pc.w, lo)
	return pc.w
}

// pollHighWatermarks asks the inputs' leaders for their end offsets every
// interval (one ListOffsets request per leader) until stop is closed. A
// failed poll is logged and tried again: until one succeeds, the inputs
// hold the watermark back as if they had more to read.
func (k *clocks) pollHighWatermarks(client sarama.Client, interval time.Duration, stop <-chan struct{}) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		if err := k.pollOnce(client); err != nil {
			log.Printf("goka peer: poll the inputs' end offsets: %v", err)
		}
		select {
		case <-stop:
			return
		case <-t.C:
		}
	}
}

func (k *clocks) pollOnce(client sarama.Client) error {
	reqs := map[*sarama.Broker]*sarama.OffsetRequest{}
	for _, topic := range k.inputs {
		for p := range k.parts {
			b, err := client.Leader(topic, int32(p))
			if err != nil {
				return fmt.Errorf("leader of %s/%d: %w", topic, p, err)
			}
			if reqs[b] == nil {
				reqs[b] = sarama.NewOffsetRequest(client.Config().Version)
			}
			reqs[b].AddBlock(topic, int32(p), sarama.OffsetNewest, 1)
		}
	}
	for b, req := range reqs {
		resp, err := b.GetAvailableOffsets(req)
		if err != nil {
			return fmt.Errorf("end offsets from broker %d: %w", b.ID(), err)
		}
		for i, topic := range k.inputs {
			for p, pc := range k.parts {
				blk := resp.GetBlock(topic, int32(p))
				if blk == nil {
					continue // another leader's
				}
				if !errors.Is(blk.Err, sarama.ErrNoError) {
					return fmt.Errorf("end offset of %s/%d: %w", topic, p, blk.Err)
				}
				end := blk.Offset
				if len(blk.Offsets) == 1 {
					end = blk.Offsets[0]
				}
				pc.mu.Lock()
				pc.hwm[i] = end
				pc.mu.Unlock()
			}
		}
	}
	return nil
}
