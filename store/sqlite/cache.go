package sqlite

import (
	"container/list"
	"hash/maphash"
	"sync"
	"sync/atomic"

	"github.com/kiln-fhir/kiln/store"
)

// The read cache. Reads of current versions by (type, id) are the hottest
// path of a FHIR server, and the SQLite read (a B-tree seek in current, a
// second in versions, the body copied out of the mapped file, the
// database/sql round trip) costs more than the HTTP around it. So the
// store keeps the most recently read current versions in memory, bounded
// in bytes (Config.CacheBytes).
//
// Coherence. Only this process writes the file while the cache is on
// (Open takes an exclusive lock on PATH.lock: lock_unix.go), so every
// change goes through the writer goroutine, which drops the entries of
// the changed resources after COMMIT and before it answers any caller. A
// caller that saw its write acknowledged therefore never reads the version
// before it from the cache.
//
// A miss reads SQLite and then fills the cache, and a commit may land
// between the two: the read may have seen the old version after the
// writer's invalidation of that key already ran. To never cache such a
// read, every key belongs to one of cacheStripes generation counters,
// bumped (under mu) by each invalidation of a key of the stripe; a miss
// takes the counter before it reads SQLite, and the fill is dropped if the
// counter moved meanwhile. Stripes rather than one counter per key keep
// the bookkeeping bounded; a collision only costs a fill.
//
// The cached store.Resource shares its Body with every reader: bodies are
// never modified after they are stored (store.Resource).
const cacheStripes = 4096

// entryOverhead approximates what an entry costs beyond its body: the
// list element, the map slot, the key and the Resource header.
const entryOverhead = 160

type cacheKey struct{ typ, id string }

type cacheEntry struct {
	key  cacheKey
	res  store.Resource
	size int64
}

type readCache struct {
	seed maphash.Seed
	max  int64

	mu      sync.Mutex // guards everything below
	size    int64
	entries map[cacheKey]*list.Element
	lru     list.List // of *cacheEntry, most recently used first
	gens    [cacheStripes]uint64

	hits, misses atomic.Int64

	// writes counts the writer's answered calls (invalidate runs once per
	// call, reindex calls included, after COMMIT and before the caller
	// hears back). While it has not moved, nothing this process committed
	// has been acknowledged since, and with the cache on no other process
	// writes the file: what a search derived from the data then (the
	// params snapshot, a count) is still what a caller may observe.
	writes atomic.Uint64
	counts countCache
}

func newReadCache(maxBytes int64) *readCache {
	return &readCache{seed: maphash.MakeSeed(), max: maxBytes, entries: map[cacheKey]*list.Element{}}
}

func (c *readCache) stripe(k cacheKey) int {
	return int(maphash.Comparable(c.seed, k) % cacheStripes)
}

// get returns the cached current version of typ/id, or, on a miss, the
// generation a fill of that key must present to put.
func (c *readCache) get(typ, id string) (store.Resource, uint64, bool) {
	k := cacheKey{typ, id}
	s := c.stripe(k)
	c.mu.Lock()
	defer c.mu.Unlock()
	if el, ok := c.entries[k]; ok {
		c.lru.MoveToFront(el)
		c.hits.Add(1)
		return el.Value.(*cacheEntry).res, 0, true
	}
	c.misses.Add(1)
	return store.Resource{}, c.gens[s], false
}

// put caches res, read from SQLite after get answered gen, unless a
// commit invalidated its key since.
func (c *readCache) put(res store.Resource, gen uint64) {
	k := cacheKey{res.Type, res.ID}
	size := int64(len(res.Body)+len(k.typ)+len(k.id)) + entryOverhead
	if size > c.max/4 {
		return // one huge resource would flush everything else
	}
	s := c.stripe(k)
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.gens[s] != gen {
		return // a commit raced this read: it may be stale
	}
	if el, ok := c.entries[k]; ok {
		c.removeLocked(el)
	}
	c.entries[k] = c.lru.PushFront(&cacheEntry{key: k, res: res, size: size})
	c.size += size
	for c.size > c.max {
		c.removeLocked(c.lru.Back())
	}
}

// invalidate drops the entries of the changed resources and moves their
// generations, so that no read begun before the commit fills them again.
func (c *readCache) invalidate(changes []store.Change) {
	c.writes.Add(1)
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, ch := range changes {
		k := cacheKey{ch.Type, ch.ID}
		c.gens[c.stripe(k)]++
		if el, ok := c.entries[k]; ok {
			c.removeLocked(el)
		}
	}
}

func (c *readCache) removeLocked(el *list.Element) {
	e := c.lru.Remove(el).(*cacheEntry)
	delete(c.entries, e.key)
	c.size -= e.size
}

// CacheStats reports the read cache's hits and misses since Open (both 0
// when the cache is off).
func (s *Store) CacheStats() (hits, misses int64) {
	if s.cache == nil {
		return 0, 0
	}
	return s.cache.hits.Load(), s.cache.misses.Load()
}

// countCache keeps the totals of recent searches (search.go), each valid
// only while readCache.writes has not moved since before it was counted:
// a total served from it is exact for the data as of the last
// acknowledged write, like a count run now. Bounded in entries; a write
// makes every entry stale at once, and stale entries are replaced as
// their queries come back.
type countCache struct {
	mu sync.Mutex
	m  map[string]countEntry
}

type countEntry struct {
	gen  uint64
	vals []int
}

// countCacheSize bounds the totals kept: a server sees few distinct
// expensive totals between two writes.
const countCacheSize = 256

// get returns the cached total of key if no write was acknowledged since
// it was counted.
func (c *countCache) get(key string, gen uint64) ([]int, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.m[key]
	if !ok || e.gen != gen {
		return nil, false
	}
	return e.vals, true
}

// put keeps the counts vals, counted after the write generation was gen.
func (c *countCache) put(key string, gen uint64, vals []int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil {
		c.m = map[string]countEntry{}
	}
	if _, ok := c.m[key]; !ok && len(c.m) >= countCacheSize {
		// Full: drop the stale entries, or, if none is, any one.
		for k, e := range c.m {
			if e.gen != gen {
				delete(c.m, k)
			}
		}
		for k := range c.m {
			if len(c.m) < countCacheSize {
				break
			}
			delete(c.m, k)
		}
	}
	c.m[key] = countEntry{gen: gen, vals: vals}
}
