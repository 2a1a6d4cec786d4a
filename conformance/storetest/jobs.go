package storetest

import (
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/kiln-fhir/kiln/store"
)

// testJobs checks the job storage of bulk export on one store.
func testJobs(t *testing.T, s store.Store) {
	js, ok := s.(store.Jobs)
	if !ok {
		t.Skip("backend does not implement the job storage: bulk export cannot run on it")
	}
	jobsAcross(t, js, js)
}

// TwoProcesses runs the checks that need two handles on one database,
// standing for two Kiln processes (design.md, scale-out): the job checks
// below with work spread over both, and a one-time record (an
// authorization code) taken exactly once across both. A backend's test
// opens a and b on the same file or database.
func TwoProcesses(t *testing.T, a, b store.Store) {
	ja, oka := a.(store.Jobs)
	jb, okb := b.(store.Jobs)
	if !oka || !okb {
		t.Skip("backend does not implement the job storage")
	}
	t.Run("Jobs", func(t *testing.T) { jobsAcross(t, ja, jb) })
	ra, oka := a.(store.Records)
	rb, okb := b.(store.Records)
	if !oka || !okb {
		t.Skip("backend does not implement store.Records")
	}
	t.Run("TakeOnce", func(t *testing.T) {
		ctx := t.Context()
		for round := range 5 {
			key := fmt.Sprintf("code%d", round)
			if err := ra.PutRecord(ctx, store.Record{Kind: "code", Key: key, Value: []byte("grant"),
				Expires: time.Now().Add(time.Minute)}); err != nil {
				t.Fatal(err)
			}
			var mu sync.Mutex
			took := 0
			var wg sync.WaitGroup
			for i := range 6 {
				wg.Go(func() {
					_, err := []store.Records{ra, rb}[i%2].TakeRecord(ctx, "code", key)
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
				t.Errorf("round %d: the code was taken %d times, want once", round, took)
			}
		}
	})
}

// jobsAcross checks the job storage through two handles (the same one
// twice for a single store): concurrent workers on both claim each job
// once; a lease that runs out passes the job on and the old owner's
// writes are then refused; a deleted job takes its chunks with it and
// refuses new ones. Writes go through one handle and reads through the
// other wherever that tells more.
func jobsAcross(t *testing.T, js, other store.Jobs) {
	ctx := t.Context()
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for i := range 12 {
		if err := js.CreateJob(ctx, store.Job{ID: fmt.Sprintf("j%02d", i), Kind: "export", State: store.JobQueued,
			Created: now.Add(time.Duration(i) * time.Millisecond), Spec: []byte("{}")}); err != nil {
			t.Fatal(err)
		}
	}
	if err := js.CreateJob(ctx, store.Job{ID: "other", Kind: "reindex", State: store.JobQueued, Created: now}); err != nil {
		t.Fatal(err)
	}
	if err := js.CreateJob(ctx, store.Job{ID: "j00", Kind: "export", State: store.JobQueued}); !errors.Is(err, store.ErrVersionConflict) {
		t.Errorf("CreateJob of a taken id: %v, want ErrVersionConflict", err)
	}
	if _, err := js.Job(ctx, "nope"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("Job of a missing id: %v, want ErrNotFound", err)
	}

	var mu sync.Mutex
	claimed := map[string]string{}
	var order []string
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Go(func() {
			owner := fmt.Sprintf("w%d", w)
			h := []store.Jobs{js, other}[w%2]
			for {
				j, err := h.ClaimJob(ctx, "export", owner, now, time.Minute)
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
				if j.State != store.JobRunning || j.Owner != owner || j.Attempts != 1 || !j.LeaseUntil.Equal(now.Add(time.Minute)) {
					t.Errorf("claimed %+v", j)
				}
				claimed[j.ID] = owner
				order = append(order, j.ID)
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if len(claimed) != 12 {
		t.Fatalf("%d jobs claimed, want 12 (of kind export only)", len(claimed))
	}
	if _, ok := claimed["other"]; ok {
		t.Error("a job of another kind was claimed")
	}

	// Lease expiry: w9 takes j00 over at now+2m; its first owner is refused.
	first := claimed["j00"]
	if _, err := js.ClaimJob(ctx, "export", "w9", now.Add(30*time.Second), time.Minute); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("claim while every lease runs: %v, want ErrNotFound", err)
	}
	j, err := other.ClaimJob(ctx, "export", "w9", now.Add(2*time.Minute), time.Minute)
	if err != nil || j.ID != "j00" || j.Attempts != 2 || j.Owner != "w9" {
		t.Fatalf("take-over (oldest job first): %+v, %v", j, err)
	}
	j.Owner = first
	if err := js.UpdateJob(ctx, j); !errors.Is(err, store.ErrVersionConflict) {
		t.Errorf("UpdateJob by the old owner: %v, want ErrVersionConflict", err)
	}
	if err := js.PutChunk(ctx, "j00", first, "f", 0, []byte("x")); !errors.Is(err, store.ErrVersionConflict) {
		t.Errorf("PutChunk by the old owner: %v, want ErrVersionConflict", err)
	}
	for n, data := range []string{"ab", "cd"} {
		if err := other.PutChunk(ctx, "j00", "w9", "f", n, []byte(data)); err != nil {
			t.Fatal(err)
		}
	}
	if err := js.PutChunk(ctx, "j00", "w9", "f", 1, []byte("CD")); err != nil {
		t.Fatal(err)
	}
	if got, err := js.Chunk(ctx, "j00", "f", 1); err != nil || string(got) != "CD" {
		t.Errorf("Chunk 1 after rewriting it: %q, %v", got, err)
	}
	if _, err := js.Chunk(ctx, "j00", "f", 2); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("Chunk past the end: %v, want ErrNotFound", err)
	}
	j.Owner, j.State, j.Result = "w9", store.JobDone, []byte(`{"ok":true}`)
	j.Expires = now.Add(time.Hour)
	if err := other.UpdateJob(ctx, j); err != nil {
		t.Fatal(err)
	}
	if got, err := js.Job(ctx, "j00"); err != nil || got.State != store.JobDone || string(got.Result) != `{"ok":true}` ||
		!got.Expires.Equal(now.Add(time.Hour)) || string(got.Spec) != "{}" {
		t.Errorf("Job after update: %+v, %v", got, err)
	}

	// DeleteChunks is the owner's: another worker's call leaves them.
	if err := js.PutChunk(ctx, "j01", claimed["j01"], "g", 0, []byte("x")); err != nil {
		t.Fatal(err)
	}
	_ = js.DeleteChunks(ctx, "j01", "w9")
	if _, err := js.Chunk(ctx, "j01", "g", 0); err != nil {
		t.Errorf("chunk after another owner's DeleteChunks: %v", err)
	}
	if err := js.DeleteChunks(ctx, "j01", claimed["j01"]); err != nil {
		t.Fatal(err)
	}
	if _, err := js.Chunk(ctx, "j01", "g", 0); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("chunk after its owner's DeleteChunks: %v, want ErrNotFound", err)
	}

	if err := js.DeleteJob(ctx, "j00"); err != nil {
		t.Fatal(err)
	}
	if _, err := other.Chunk(ctx, "j00", "f", 0); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("chunk of a deleted job: %v", err)
	}
	if err := other.PutChunk(ctx, "j00", "w9", "f", 2, []byte("late")); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("PutChunk after delete: %v, want ErrNotFound", err)
	}
	if err := js.UpdateJob(ctx, j); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("UpdateJob after delete: %v, want ErrNotFound", err)
	}
	if err := js.DeleteJob(ctx, "j00"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("second DeleteJob: %v, want ErrNotFound", err)
	}
	jobs, err := js.Jobs(ctx, "export")
	if err != nil || len(jobs) != 11 {
		t.Fatalf("Jobs: %d, %v", len(jobs), err)
	}
	for i, j := range jobs {
		if want := fmt.Sprintf("j%02d", i+1); j.ID != want {
			t.Errorf("Jobs[%d] = %s, want %s (oldest first)", i, j.ID, want)
		}
	}
}
