package state

import "github.com/triggerd/triggerd/schemas"

// custCache keeps decoded customer records between batches, so that a hot
// customer (activity is Zipf-skewed: a few customers send most events) is
// not read from Pebble and decoded again in every batch. In a live phase of
// the workload benchmark the read and the decode were half of the
// processor's CPU.
//
// It holds committed records only, so it never disagrees with Pebble: a
// batch takes a record out of the cache (take), changes it in place, and
// Commit puts it back (put); Abort drops it, and the next batch reads the
// committed record from Pebble. Erase and the restore drop what they
// replace. Its size is a count of records per partition; when full, put
// evicts the least recently committed of a few sampled records (sampling
// the map's random iteration order, as Redis does, instead of keeping a
// list in order on the hot path).
type custCache struct {
	max  int
	tick uint64
	m    map[schemas.CustomerID]cachedCustomer
}

type cachedCustomer struct {
	c    *schemas.Customer
	tick uint64 // when it was last committed
}

// evictSample is how many records put compares to choose one to evict.
const evictSample = 5

func newCustCache(max int) custCache {
	if max <= 0 {
		return custCache{}
	}
	return custCache{max: max, m: make(map[schemas.CustomerID]cachedCustomer, max)}
}

// take removes id's record from the cache and returns it.
func (cc *custCache) take(id schemas.CustomerID) (*schemas.Customer, bool) {
	e, ok := cc.m[id]
	if !ok {
		return nil, false
	}
	delete(cc.m, id)
	return e.c, true
}

// put caches c, the committed record of id, and returns the record it
// evicted to make room (nil if none), for reuse.
func (cc *custCache) put(id schemas.CustomerID, c *schemas.Customer) (evicted *schemas.Customer) {
	if cc.max == 0 {
		return c
	}
	cc.tick++
	if old, ok := cc.m[id]; ok {
		evicted = old.c // cannot happen (take removed it), but never leak one
	} else if len(cc.m) >= cc.max {
		var victim schemas.CustomerID
		oldest, n := ^uint64(0), 0
		for k, e := range cc.m {
			if e.tick < oldest {
				victim, oldest = k, e.tick
			}
			if n++; n == evictSample {
				break
			}
		}
		evicted = cc.m[victim].c
		delete(cc.m, victim)
	}
	cc.m[id] = cachedCustomer{c: c, tick: cc.tick}
	return evicted
}

// drop removes id's record, returning it for reuse (nil if not cached).
func (cc *custCache) drop(id schemas.CustomerID) *schemas.Customer {
	c, _ := cc.take(id)
	return c
}

// clear empties the cache, handing every record to release.
func (cc *custCache) clear(release func(*schemas.Customer)) {
	for _, e := range cc.m {
		release(e.c)
	}
	clear(cc.m)
}
