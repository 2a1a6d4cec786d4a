package load

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

func get(url string) func(int) (*http.Request, error) {
	return func(int) (*http.Request, error) { return http.NewRequest(http.MethodGet, url, nil) }
}

func TestRunCountsEveryRequestOnce(t *testing.T) {
	var (
		mu   sync.Mutex
		seen = map[string]int{}
	)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		seen[r.URL.Query().Get("i")]++
		mu.Unlock()
		w.Write([]byte("ok"))
	}))
	defer srv.Close()
	res, err := Run(context.Background(), Config{
		Concurrency: 4,
		Requests:    500,
		Duration:    time.Minute,
		New: func(i int) (*http.Request, error) {
			return http.NewRequest(http.MethodGet, srv.URL+"/?i="+strconv.Itoa(i), nil)
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	if res.Requests != 500 || res.OK != 500 || res.Errors != 0 || res.Err != nil {
		t.Fatalf("result %v (first error %v), want 500 requests all ok", res, res.Err)
	}
	if len(seen) != 500 {
		t.Errorf("server saw %d distinct requests, want 500", len(seen))
	}
	for k, n := range seen {
		if n != 1 {
			t.Errorf("request %q sent %d times", k, n)
		}
	}
	if p50, p99 := res.Quantile(0.5), res.Quantile(0.99); p50 <= 0 || p99 < p50 {
		t.Errorf("p50 %v, p99 %v", p50, p99)
	}
	if res.Rate() <= 0 {
		t.Errorf("rate %v", res.Rate())
	}
}

func TestRunStopsAtDuration(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	defer srv.Close()
	start := time.Now()
	res, err := Run(context.Background(), Config{
		Concurrency: 2,
		Requests:    1 << 30,
		Duration:    200 * time.Millisecond,
		New:         get(srv.URL),
	})
	if err != nil {
		t.Fatal(err)
	}
	if took := time.Since(start); took > 10*time.Second {
		t.Errorf("run took %v, want about 200ms", took)
	}
	if res.OK == 0 || res.Errors != 0 {
		t.Errorf("result %v, first error %v", res, res.Err)
	}
}

func TestRunReportsFailures(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/bad" {
			http.Error(w, "nope", http.StatusInternalServerError)
		}
	}))
	defer srv.Close()
	res, err := Run(context.Background(), Config{
		Concurrency: 3,
		Requests:    30,
		Duration:    time.Minute,
		New: func(i int) (*http.Request, error) {
			path := "/good"
			if i%3 == 0 {
				path = "/bad"
			}
			return http.NewRequest(http.MethodGet, srv.URL+path, nil)
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	if res.Requests != 30 || res.OK != 20 || res.Errors != 10 {
		t.Fatalf("result %v, want 20 ok and 10 errors", res)
	}
	if res.Err == nil || !strings.Contains(res.Err.Error(), "status 500") {
		t.Errorf("first error %v, want one naming status 500", res.Err)
	}

	checkErr := errors.New("wrong body")
	res, err = Run(context.Background(), Config{
		Concurrency: 1, Requests: 3, Duration: time.Minute, New: get(srv.URL + "/good"),
		Check: func(int, *http.Response, []byte) error { return checkErr },
	})
	if err != nil {
		t.Fatal(err)
	}
	if res.OK != 0 || res.Errors != 3 || !errors.Is(res.Err, checkErr) {
		t.Errorf("result %v, first error %v: want 3 failed checks", res, res.Err)
	}
}

func TestRunRefusesNonLoopback(t *testing.T) {
	// 192.0.2.0/24 is TEST-NET-1 (RFC 5737): never a local address.
	res, err := Run(context.Background(), Config{
		Concurrency: 1, Requests: 1, Duration: time.Minute, Timeout: 5 * time.Second,
		New: get("http://192.0.2.1:80/"),
	})
	if err != nil {
		t.Fatal(err)
	}
	if res.OK != 0 || res.Err == nil || !strings.Contains(res.Err.Error(), "not a loopback address") {
		t.Fatalf("result %v, first error %v: want the dial refused", res, res.Err)
	}
}

func TestRunRejectsBadConfig(t *testing.T) {
	for _, cfg := range []Config{
		{Requests: 1, Duration: time.Second, New: get("http://127.0.0.1/")},
		{Concurrency: 1, Duration: time.Second, New: get("http://127.0.0.1/")},
		{Concurrency: 1, Requests: 1, New: get("http://127.0.0.1/")},
		{Concurrency: 1, Requests: 1, Duration: time.Second},
	} {
		if _, err := Run(context.Background(), cfg); err == nil {
			t.Errorf("Run(%+v) accepted an incomplete config", cfg)
		}
	}
}
