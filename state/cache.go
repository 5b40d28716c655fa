package state

// cache keeps committed state between batches, so that a hot customer
// (activity is Zipf-skewed: a few customers send most events) is not read
// from Pebble again in every batch. A partition has two: decoded customer
// records, and the committed due time of timers (see timerCache). In a live
// phase of the workload benchmark the customer read and decode were half of
// the processor's CPU; in the full-size drain the timer lookups were 9%.
//
// A cache holds committed values only, so it never disagrees with Pebble:
// values change in it only when a batch commits, and Erase and the restore
// drop what they replace. Its size is a count of entries per partition; when
// full, put evicts the least recently committed of a few sampled entries
// (sampling the map's random iteration order, as Redis does, instead of
// keeping a list in order on the hot path).
type cache[K comparable, V any] struct {
	max  int
	tick uint64
	m    map[K]cached[V]
}

type cached[V any] struct {
	v    V
	tick uint64 // when it was last committed
}

// evictSample is how many entries put compares to choose one to evict.
const evictSample = 5

// newCache returns a cache of up to max entries; max <= 0 turns it off.
func newCache[K comparable, V any](max int) cache[K, V] {
	if max <= 0 {
		return cache[K, V]{}
	}
	return cache[K, V]{max: max, m: make(map[K]cached[V], max)}
}

// get returns k's value.
func (c *cache[K, V]) get(k K) (V, bool) {
	e, ok := c.m[k]
	return e.v, ok
}

// take removes k's value and returns it.
func (c *cache[K, V]) take(k K) (V, bool) {
	e, ok := c.m[k]
	if ok {
		delete(c.m, k)
	}
	return e.v, ok
}

// put caches v, the committed value of k. It returns the value it replaced
// or evicted to make room, if any, for reuse; with the cache off, v itself.
func (c *cache[K, V]) put(k K, v V) (old V, hadOld bool) {
	if c.max == 0 {
		return v, true
	}
	c.tick++
	if e, ok := c.m[k]; ok {
		old, hadOld = e.v, true
	} else if len(c.m) >= c.max {
		var victim K
		oldest, n := ^uint64(0), 0
		for k, e := range c.m {
			if e.tick < oldest {
				victim, oldest = k, e.tick
			}
			if n++; n == evictSample {
				break
			}
		}
		old, hadOld = c.m[victim].v, true
		delete(c.m, victim)
	}
	c.m[k] = cached[V]{v: v, tick: c.tick}
	return old, hadOld
}

// clear empties the cache, handing every value to release (if not nil).
func (c *cache[K, V]) clear(release func(V)) {
	if release != nil {
		for _, e := range c.m {
			release(e.v)
		}
	}
	clear(c.m)
}
