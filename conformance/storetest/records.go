package storetest

import (
	"bytes"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/kiln-fhir/kiln/store"
)

// testRecords checks store.Records, the authorization server's state
// (smart package): the atomic operations are what stop an authorization
// code or an assertion jti from being used twice when several Kiln
// processes share one backend.
func testRecords(t *testing.T, s store.Store) {
	rs, ok := s.(store.Records)
	if !ok {
		t.Skip("backend does not implement store.Records (needed for --auth=smart)")
	}
	ctx := t.Context()
	later := time.Now().Add(time.Hour)
	past := time.Now().Add(-time.Second)
	rec := func(kind, key, v string, exp time.Time) store.Record {
		return store.Record{Kind: kind, Key: key, Value: []byte(v), Expires: exp}
	}
	get := func(kind, key string) (store.Record, error) { return rs.GetRecord(ctx, kind, key) }
	mustValue := func(t *testing.T, kind, key, want string) store.Record {
		t.Helper()
		r, err := get(kind, key)
		if err != nil {
			t.Fatalf("GetRecord(%s, %s): %v", kind, key, err)
		}
		if !bytes.Equal(r.Value, []byte(want)) || r.Kind != kind || r.Key != key {
			t.Fatalf("GetRecord(%s, %s) = %s/%s %q, want %q", kind, key, r.Kind, r.Key, r.Value, want)
		}
		return r
	}
	mustNotFound := func(t *testing.T, kind, key string) {
		t.Helper()
		if r, err := get(kind, key); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("GetRecord(%s, %s) = %q, %v; want ErrNotFound", kind, key, r.Value, err)
		}
	}

	t.Run("put get replace delete", func(t *testing.T) {
		mustNotFound(t, "client", "a")
		if err := rs.PutRecord(ctx, rec("client", "a", "one", time.Time{})); err != nil {
			t.Fatal(err)
		}
		r := mustValue(t, "client", "a", "one")
		if r.Version != 1 || !r.Expires.IsZero() {
			t.Errorf("version %d expires %v, want 1 and zero", r.Version, r.Expires)
		}
		// Kinds are separate name spaces; keys are case-sensitive.
		mustNotFound(t, "user", "a")
		mustNotFound(t, "client", "A")
		if err := rs.PutRecord(ctx, rec("client", "a", "two", later)); err != nil {
			t.Fatal(err)
		}
		r = mustValue(t, "client", "a", "two")
		if d := r.Expires.Sub(later); d > time.Millisecond || d < -time.Millisecond {
			t.Errorf("expires %v, want %v", r.Expires, later)
		}
		// A replacement is a new version: a compare-and-set on the
		// version read before it must fail.
		if r.Version != 2 {
			t.Errorf("version after a replacing put = %d, want 2", r.Version)
		}
		if err := rs.SwapRecord(ctx, store.Record{Kind: "client", Key: "a", Value: []byte("x"), Version: 1}); !errors.Is(err, store.ErrVersionConflict) {
			t.Errorf("SwapRecord with the version before a put: %v, want ErrVersionConflict", err)
		}
		if err := rs.DeleteRecord(ctx, "client", "a"); err != nil {
			t.Fatal(err)
		}
		mustNotFound(t, "client", "a")
		if err := rs.DeleteRecord(ctx, "client", "a"); err != nil {
			t.Errorf("deleting a missing record: %v", err)
		}
	})

	t.Run("expired is gone", func(t *testing.T) {
		if err := rs.PutRecord(ctx, rec("code", "old", "x", past)); err != nil {
			t.Fatal(err)
		}
		mustNotFound(t, "code", "old")
		if _, err := rs.TakeRecord(ctx, "code", "old"); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("TakeRecord of an expired record: %v, want ErrNotFound", err)
		}
		// An expired record does not block InsertRecord.
		if err := rs.InsertRecord(ctx, rec("code", "old", "new", later)); err != nil {
			t.Fatalf("InsertRecord over an expired record: %v", err)
		}
		mustValue(t, "code", "old", "new")
	})

	t.Run("insert once", func(t *testing.T) {
		if err := rs.InsertRecord(ctx, rec("jti", "j1", "", later)); err != nil {
			t.Fatal(err)
		}
		if err := rs.InsertRecord(ctx, rec("jti", "j1", "", later)); !errors.Is(err, store.ErrVersionConflict) {
			t.Fatalf("second InsertRecord: %v, want ErrVersionConflict", err)
		}
		// Concurrent inserts of one key: exactly one wins.
		var wins, losses int
		var mu sync.Mutex
		var wg sync.WaitGroup
		for range 8 {
			wg.Go(func() {
				err := rs.InsertRecord(ctx, rec("jti", "race", "", later))
				mu.Lock()
				defer mu.Unlock()
				switch {
				case err == nil:
					wins++
				case errors.Is(err, store.ErrVersionConflict):
					losses++
				default:
					t.Errorf("InsertRecord: %v", err)
				}
			})
		}
		wg.Wait()
		if wins != 1 || losses != 7 {
			t.Errorf("concurrent inserts: %d won, %d lost; want 1 and 7", wins, losses)
		}
	})

	t.Run("take once", func(t *testing.T) {
		if err := rs.PutRecord(ctx, rec("code", "c1", "grant", later)); err != nil {
			t.Fatal(err)
		}
		var got []string
		var mu sync.Mutex
		var wg sync.WaitGroup
		for range 8 {
			wg.Go(func() {
				r, err := rs.TakeRecord(ctx, "code", "c1")
				mu.Lock()
				defer mu.Unlock()
				switch {
				case err == nil:
					got = append(got, string(r.Value))
				case !errors.Is(err, store.ErrNotFound):
					t.Errorf("TakeRecord: %v", err)
				}
			})
		}
		wg.Wait()
		if len(got) != 1 || got[0] != "grant" {
			t.Errorf("concurrent takes got %q, want exactly one \"grant\"", got)
		}
		mustNotFound(t, "code", "c1")
	})

	t.Run("swap", func(t *testing.T) {
		if err := rs.SwapRecord(ctx, store.Record{Kind: "fail", Key: "none", Version: 1}); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("SwapRecord of a missing record: %v, want ErrNotFound", err)
		}
		if err := rs.PutRecord(ctx, rec("fail", "u", "0", later)); err != nil {
			t.Fatal(err)
		}
		// Eight concurrent read-modify-write loops each add one: the
		// counter must end at 8, every lost swap retried.
		var wg sync.WaitGroup
		for range 8 {
			wg.Go(func() {
				for {
					r, err := get("fail", "u")
					if err != nil {
						t.Error(err)
						return
					}
					var n int
					fmt.Sscan(string(r.Value), &n)
					r.Value = fmt.Append(nil, n+1)
					err = rs.SwapRecord(ctx, r)
					if err == nil {
						return
					}
					if !errors.Is(err, store.ErrVersionConflict) {
						t.Error(err)
						return
					}
				}
			})
		}
		wg.Wait()
		r := mustValue(t, "fail", "u", "8")
		if r.Version != 9 {
			t.Errorf("version after 8 swaps = %d, want 9", r.Version)
		}
		stale := r
		stale.Version = 3
		if err := rs.SwapRecord(ctx, stale); !errors.Is(err, store.ErrVersionConflict) {
			t.Errorf("stale SwapRecord: %v, want ErrVersionConflict", err)
		}
	})

	t.Run("list", func(t *testing.T) {
		for _, k := range []string{"b", "a", "c"} {
			if err := rs.PutRecord(ctx, rec("key", k, "v"+k, time.Time{})); err != nil {
				t.Fatal(err)
			}
		}
		if err := rs.PutRecord(ctx, rec("key", "d", "expired", past)); err != nil {
			t.Fatal(err)
		}
		if err := rs.PutRecord(ctx, rec("other", "z", "", time.Time{})); err != nil {
			t.Fatal(err)
		}
		got, err := rs.ListRecords(ctx, "key")
		if err != nil {
			t.Fatal(err)
		}
		var keys []string
		for _, r := range got {
			keys = append(keys, r.Key+"="+string(r.Value))
		}
		if fmt.Sprint(keys) != "[a=va b=vb c=vc]" {
			t.Errorf("ListRecords = %v, want [a=va b=vb c=vc]", keys)
		}
	})
}
