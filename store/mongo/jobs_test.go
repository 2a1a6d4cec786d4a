package mongo_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/kiln-fhir/kiln/store"
	"github.com/kiln-fhir/kiln/store/mongo"
	"github.com/kiln-fhir/kiln/store/mongo/mongotest"
)

// TestTwoProcesses: two stores on one database stand for two Kiln
// processes. Workers on both claim each job exactly once, and an
// authorization code stored through one is redeemed exactly once across
// both (issue 7, scale-out).
func TestTwoProcesses(t *testing.T) {
	srv := mongotest.Start(t)
	a := openStore(t, srv)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	b, err := mongo.Open(ctx, srv.URI, mongo.Options{Database: a.Database(),
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for i := range 20 {
		if err := a.CreateJob(ctx, store.Job{ID: fmt.Sprintf("j%02d", i), Kind: "export", State: store.JobQueued,
			Created: now.Add(time.Duration(i) * time.Millisecond)}); err != nil {
			t.Fatal(err)
		}
	}
	var mu sync.Mutex
	claimed := map[string]string{}
	var wg sync.WaitGroup
	for w := range 6 {
		wg.Go(func() {
			s := []*mongo.Store{a, b}[w%2]
			owner := fmt.Sprintf("w%d", w)
			for {
				j, err := s.ClaimJob(ctx, "export", owner, now, time.Minute)
				if errors.Is(err, store.ErrNotFound) {
					return
				}
				if err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				if prev, ok := claimed[j.ID]; ok {
					t.Errorf("%s claimed by %s and %s", j.ID, prev, owner)
				}
				claimed[j.ID] = owner
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if len(claimed) != 20 {
		t.Fatalf("%d jobs claimed, want 20", len(claimed))
	}

	for round := range 5 {
		key := fmt.Sprintf("code%d", round)
		if err := a.PutRecord(ctx, store.Record{Kind: "code", Key: key, Value: []byte("grant"),
			Expires: time.Now().Add(time.Minute)}); err != nil {
			t.Fatal(err)
		}
		var took int
		var wg sync.WaitGroup
		for i := range 6 {
			wg.Go(func() {
				_, err := []*mongo.Store{a, b}[i%2].TakeRecord(ctx, "code", key)
				mu.Lock()
				defer mu.Unlock()
				switch {
				case err == nil:
					took++
				case !errors.Is(err, store.ErrNotFound):
					t.Error(err)
				}
			})
		}
		wg.Wait()
		if took != 1 {
			t.Errorf("round %d: the code was redeemed %d times, want once", round, took)
		}
	}
}
