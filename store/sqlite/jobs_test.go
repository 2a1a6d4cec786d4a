package sqlite

import (
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kiln-fhir/kiln/store"
)

// TestJobClaims: two stores on one file (two processes) claim each job
// once; a lease that runs out passes the job on, and the old owner's
// writes are then refused; a deleted job takes its chunks with it and
// refuses new ones.
func TestJobClaims(t *testing.T) {
	path := filepath.Join(t.TempDir(), "kiln.db")
	a, b := openPath(t, path), openPath(t, path)
	defer a.Close()
	defer b.Close()
	ctx := t.Context()
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for i := range 20 {
		if err := a.CreateJob(ctx, store.Job{ID: fmt.Sprintf("j%02d", i), Kind: "export", State: store.JobQueued,
			Created: now.Add(time.Duration(i) * time.Millisecond), Spec: []byte("{}")}); err != nil {
			t.Fatal(err)
		}
	}
	if err := a.CreateJob(ctx, store.Job{ID: "j00", Kind: "export", State: store.JobQueued}); !errors.Is(err, store.ErrVersionConflict) {
		t.Errorf("CreateJob of a taken id: %v, want ErrVersionConflict", err)
	}

	var mu sync.Mutex
	claimed := map[string]string{}
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Go(func() {
			s := []*Store{a, b}[w%2]
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

	// Lease expiry: w9 takes j00 over at now+2m; its first owner is refused.
	first := claimed["j00"]
	j, err := b.ClaimJob(ctx, "export", "w9", now.Add(2*time.Minute), time.Minute)
	if err != nil || j.ID != "j00" || j.Attempts != 2 || j.Owner != "w9" {
		t.Fatalf("take-over: %+v, %v", j, err)
	}
	j.Owner = first
	if err := a.UpdateJob(ctx, j); !errors.Is(err, store.ErrVersionConflict) {
		t.Errorf("UpdateJob by the old owner: %v, want ErrVersionConflict", err)
	}
	if err := a.PutChunk(ctx, "j00", first, "f", 0, []byte("x")); !errors.Is(err, store.ErrVersionConflict) {
		t.Errorf("PutChunk by the old owner: %v, want ErrVersionConflict", err)
	}
	for n, data := range []string{"ab", "cd"} {
		if err := b.PutChunk(ctx, "j00", "w9", "f", n, []byte(data)); err != nil {
			t.Fatal(err)
		}
	}
	if got, err := a.Chunk(ctx, "j00", "f", 1); err != nil || string(got) != "cd" {
		t.Errorf("Chunk 1: %q, %v", got, err)
	}
	if _, err := a.Chunk(ctx, "j00", "f", 2); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("Chunk past the end: %v, want ErrNotFound", err)
	}
	j.Owner, j.State, j.Result = "w9", store.JobDone, []byte(`{"ok":true}`)
	if err := b.UpdateJob(ctx, j); err != nil {
		t.Fatal(err)
	}
	if got, err := a.Job(ctx, "j00"); err != nil || got.State != store.JobDone || string(got.Result) != `{"ok":true}` {
		t.Errorf("Job after update: %+v, %v", got, err)
	}

	if err := a.DeleteJob(ctx, "j00"); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Chunk(ctx, "j00", "f", 0); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("chunk of a deleted job: %v", err)
	}
	if err := b.PutChunk(ctx, "j00", "w9", "f", 2, []byte("late")); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("PutChunk after delete: %v, want ErrNotFound", err)
	}
	if err := b.UpdateJob(ctx, j); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("UpdateJob after delete: %v, want ErrNotFound", err)
	}
	if err := a.DeleteJob(ctx, "j00"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("second DeleteJob: %v, want ErrNotFound", err)
	}
	jobs, err := a.Jobs(ctx, "export")
	if err != nil || len(jobs) != 19 {
		t.Errorf("Jobs: %d, %v", len(jobs), err)
	}
}

// TestScanPlan: a scan page seeks current_id and walks it in id order (no
// sort), and finds an older version through versions_instance.
func TestScanPlan(t *testing.T) {
	s := openTemp(t)
	defer s.Close()
	plan := explainArgs(t, s, frag{scanSQL, []any{int64(0), "Patient", "", int64(0), false, 10}})
	t.Log(plan)
	for _, want := range []string{"current_id", "versions_instance"} {
		if !strings.Contains(plan, want) {
			t.Errorf("scan plan does not use %s: %s", want, plan)
		}
	}
	if strings.Contains(plan, "TEMP B-TREE") {
		t.Errorf("scan sorts: %s", plan)
	}
}
