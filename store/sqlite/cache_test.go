package sqlite

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/kiln-fhir/kiln/conformance/storetest"
	"github.com/kiln-fhir/kiln/store"
)

func openCached(t *testing.T, path string, cacheBytes int64) *Store {
	t.Helper()
	s, err := Open(context.Background(), Config{Path: path, CacheBytes: cacheBytes})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	return s
}

// TestStoreWithCache runs the backend suite with the read cache on, small
// enough (64 KiB) that it also evicts during the suite.
func TestStoreWithCache(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store {
		return openCached(t, filepath.Join(t.TempDir(), "kiln.db"), 64<<10)
	})
}

// TestCacheReadYourWrites: writers update, delete and resurrect a small
// set of resources while readers keep the cache full of them. After every
// acknowledged Commit, the writer's own Read must answer a version at
// least as new as the one it wrote (others may have written since), and
// never a cached older one; at the end every Read equals the file.
func TestCacheReadYourWrites(t *testing.T) {
	s := openCached(t, filepath.Join(t.TempDir(), "kiln.db"), 1<<20)
	defer s.Close()
	ctx := context.Background()
	const (
		keys    = 8
		writers = 6
		rounds  = 60
	)
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for range 4 { // readers: fill the cache while the writers commit
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				s.Read(ctx, "Patient", fmt.Sprint(rand.IntN(keys)))
			}
		}()
	}
	errc := make(chan error, writers)
	var ww sync.WaitGroup
	for w := range writers {
		ww.Add(1)
		go func() {
			defer ww.Done()
			for i := range rounds {
				id := fmt.Sprint((w + i) % keys)
				cur, err := s.Read(ctx, "Patient", id)
				var current int64
				switch {
				case err == nil, errors.Is(err, store.ErrGone):
					current = cur.Version
				case errors.Is(err, store.ErrNotFound):
				default:
					errc <- err
					return
				}
				// Every third write of a live resource deletes it; a write
				// after a delete resurrects it.
				ch := store.Change{Type: "Patient", ID: id, Version: current + 1, LastUpdated: time.Now(), Method: store.MethodPut,
					Body: fmt.Appendf(nil, `{"resourceType":"Patient","id":%q,"v":%d}`, id, current+1)}
				if err == nil && i%3 == 2 {
					ch.Method, ch.Body = store.MethodDelete, nil
				}
				if err := s.Commit(ctx, ch); errors.Is(err, store.ErrVersionConflict) {
					continue // another writer got there first
				} else if err != nil {
					errc <- err
					return
				}
				got, err := s.Read(ctx, "Patient", id)
				if ch.Method == store.MethodDelete && got.Version == ch.Version && !errors.Is(err, store.ErrGone) {
					errc <- fmt.Errorf("Patient/%s: deleted as version %d, Read answers %v", id, ch.Version, err)
					return
				}
				if got.Version < ch.Version {
					errc <- fmt.Errorf("Patient/%s: wrote version %d, then Read answered version %d (%v): a stale cached read", id, ch.Version, got.Version, err)
					return
				}
			}
		}()
	}
	ww.Wait()
	close(stop)
	wg.Wait()
	close(errc)
	for err := range errc {
		t.Error(err)
	}
	for k := range keys {
		id := fmt.Sprint(k)
		got, gerr := s.Read(ctx, "Patient", id)
		want, werr := s.read(ctx, "Patient", id)
		if got.Version != want.Version || (gerr == nil) != (werr == nil) || string(got.Body) != string(want.Body) {
			t.Errorf("Patient/%s: cached Read version %d (%v), file version %d (%v)", id, got.Version, gerr, want.Version, werr)
		}
	}
	if hits, _ := s.CacheStats(); hits == 0 {
		t.Error("the cache never answered a read: the test proved nothing")
	}
}

// TestCacheFillRacingCommit: a read that began before a commit of its key
// (it took the generation, then read the old version) must not be cached
// once the writer has invalidated the key.
func TestCacheFillRacingCommit(t *testing.T) {
	c := newReadCache(1 << 20)
	old := store.Resource{Type: "Patient", ID: "a", Version: 1, Body: []byte(`{"v":1}`)}
	_, gen, ok := c.get("Patient", "a")
	if ok {
		t.Fatal("hit in an empty cache")
	}
	c.invalidate([]store.Change{{Type: "Patient", ID: "a", Version: 2}}) // the commit lands
	c.put(old, gen)                                                      // the racing read's fill
	if _, _, ok := c.get("Patient", "a"); ok {
		t.Fatal("a read that raced a commit was cached")
	}
	// A fill that did not race is cached; an invalidation drops it.
	_, gen, _ = c.get("Patient", "a")
	c.put(store.Resource{Type: "Patient", ID: "a", Version: 2, Body: []byte(`{"v":2}`)}, gen)
	if r, _, ok := c.get("Patient", "a"); !ok || r.Version != 2 {
		t.Fatalf("fill not cached: %v %v", r, ok)
	}
	c.invalidate([]store.Change{{Type: "Patient", ID: "a", Version: 3}})
	if _, _, ok := c.get("Patient", "a"); ok {
		t.Fatal("an invalidated entry still answers")
	}
}

// TestCacheBounded: the cache never holds more bytes than its bound, and
// evicts the least recently used entry first.
func TestCacheBounded(t *testing.T) {
	const max = 10 << 10
	c := newReadCache(max)
	body := make([]byte, 1000)
	put := func(id string) {
		_, gen, _ := c.get("Patient", id)
		c.put(store.Resource{Type: "Patient", ID: id, Version: 1, Body: body}, gen)
	}
	for i := range 100 {
		put(fmt.Sprint(i))
		c.get("Patient", "0") // keep 0 the most recently used
		if c.size > max {
			t.Fatalf("after %d puts the cache holds %d bytes, bound %d", i+1, c.size, max)
		}
	}
	if _, _, ok := c.get("Patient", "0"); !ok {
		t.Error("the most recently used entry was evicted")
	}
	if _, _, ok := c.get("Patient", "1"); ok {
		t.Error("an old entry survived 100 puts into room for 9")
	}
	c.put(store.Resource{Type: "Patient", ID: "huge", Body: make([]byte, max)}, 0)
	if _, _, ok := c.get("Patient", "huge"); ok {
		t.Error("an entry larger than a quarter of the cache was cached")
	}
}

// TestCacheLock: a store with a cache has the file to itself. While it is
// open no other store opens the file, with or without a cache, and it
// cannot open while another store has the file; after Close it can.
func TestCacheLock(t *testing.T) {
	path := filepath.Join(t.TempDir(), "kiln.db")
	cached := openCached(t, path, 1<<20)
	for _, cacheBytes := range []int64{1 << 20, 0} {
		if s, err := Open(context.Background(), Config{Path: path, CacheBytes: cacheBytes}); !errors.Is(err, ErrLocked) {
			if err == nil {
				s.Close()
			}
			t.Errorf("Open (cache %d) beside a caching store: %v, want ErrLocked", cacheBytes, err)
		}
	}
	cached.Close()
	plain := openPath(t, path)
	if s, err := Open(context.Background(), Config{Path: path, CacheBytes: 1 << 20}); !errors.Is(err, ErrLocked) {
		if err == nil {
			s.Close()
		}
		t.Errorf("Open with a cache beside an open store: %v, want ErrLocked", err)
	}
	plain.Close()
	openCached(t, path, 1<<20).Close()
}
