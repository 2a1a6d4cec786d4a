// Package load is the small HTTP load generator Kiln's benchmarks measure
// with: a fixed number of workers, each with one request in flight (a
// closed loop), until a request budget or a time budget is spent, keeping
// the latency of every request for percentiles.
//
// It talks to loopback addresses only: the dialer refuses any other
// address after name resolution, so a benchmark can never be pointed at
// somebody else's server.
package load

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math"
	"net"
	"net/http"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// Config describes one run. Concurrency, Requests, Duration and New are
// required.
type Config struct {
	// Concurrency is the number of workers, each with one request in
	// flight at a time.
	Concurrency int
	// Requests caps the number of requests sent.
	Requests int
	// Duration caps the wall time: no request starts after it.
	Duration time.Duration
	// Timeout bounds one request, body included (0: 30 s). A request in
	// flight when Duration ends is waited for.
	Timeout time.Duration
	// New builds request i (0 ≤ i < Requests, each i exactly once). It is
	// called from several goroutines at once.
	New func(i int) (*http.Request, error)
	// Check judges a response whose body has been read in full; nil
	// accepts any 2xx. It is called from several goroutines at once and
	// must not keep body.
	Check func(i int, resp *http.Response, body []byte) error
}

// Result is what a run measured.
type Result struct {
	// Requests counts the requests sent, OK those that passed Check.
	Requests, OK int
	// Errors counts transport errors and failed checks; Err is the first.
	Errors int
	Err    error
	// Elapsed is the wall time from the first request to the last answer.
	Elapsed time.Duration

	latencies []time.Duration // of the OK requests, sorted
}

// Rate is the number of OK requests per second.
func (r *Result) Rate() float64 {
	if r.Elapsed <= 0 {
		return 0
	}
	return float64(r.OK) / r.Elapsed.Seconds()
}

// Quantile returns the q-quantile (0 ≤ q ≤ 1) of the OK requests'
// latencies, nearest rank; 0 when none.
func (r *Result) Quantile(q float64) time.Duration {
	n := len(r.latencies)
	if n == 0 {
		return 0
	}
	i := int(math.Ceil(q*float64(n))) - 1
	return r.latencies[min(max(i, 0), n-1)]
}

func (r *Result) String() string {
	return fmt.Sprintf("%d requests, %d ok, %d errors in %v: %.0f/s, p50 %v, p99 %v",
		r.Requests, r.OK, r.Errors, r.Elapsed.Round(time.Millisecond), r.Rate(),
		r.Quantile(0.5), r.Quantile(0.99))
}

// Run sends the requests of cfg and waits for every answer. Its error is
// about cfg or ctx; failed requests are counted in the Result.
func Run(ctx context.Context, cfg Config) (*Result, error) {
	switch {
	case cfg.Concurrency <= 0, cfg.Requests <= 0, cfg.Duration <= 0:
		return nil, errors.New("load: Concurrency, Requests and Duration must be positive")
	case cfg.New == nil:
		return nil, errors.New("load: Config.New is required")
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 30 * time.Second
	}
	if cfg.Check == nil {
		cfg.Check = check2xx
	}
	tr := newTransport(cfg.Concurrency)
	defer tr.CloseIdleConnections()
	client := &http.Client{
		Transport: tr,
		Timeout:   cfg.Timeout,
		// A redirect could lead off loopback by name; the dialer would
		// refuse it, but a benchmark has no reason to follow one.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}

	// budget stops new requests; ctx also aborts those in flight.
	budget, cancel := context.WithTimeout(ctx, cfg.Duration)
	defer cancel()
	var (
		next    atomic.Int64
		mu      sync.Mutex // guards res.Errors, res.Err and res.latencies
		res     = &Result{}
		workers sync.WaitGroup
		sent    atomic.Int64
	)
	fail := func(err error) {
		mu.Lock()
		defer mu.Unlock()
		res.Errors++
		if res.Err == nil {
			res.Err = err
		}
	}
	start := time.Now()
	for range cfg.Concurrency {
		workers.Go(func() {
			var (
				body bytes.Buffer
				lat  []time.Duration
			)
			defer func() {
				mu.Lock()
				res.latencies = append(res.latencies, lat...)
				mu.Unlock()
			}()
			for budget.Err() == nil {
				i := int(next.Add(1) - 1)
				if i >= cfg.Requests {
					return
				}
				req, err := cfg.New(i)
				if err != nil {
					fail(fmt.Errorf("load: request %d: %w", i, err))
					return
				}
				sent.Add(1)
				t0 := time.Now()
				resp, err := client.Do(req.WithContext(ctx))
				if err != nil {
					fail(fmt.Errorf("load: request %d: %w", i, err))
					continue
				}
				body.Reset()
				_, err = body.ReadFrom(resp.Body)
				resp.Body.Close()
				d := time.Since(t0)
				if err != nil {
					fail(fmt.Errorf("load: request %d: reading body: %w", i, err))
					continue
				}
				if err := cfg.Check(i, resp, body.Bytes()); err != nil {
					fail(fmt.Errorf("load: request %d: %w", i, err))
					continue
				}
				lat = append(lat, d)
			}
		})
	}
	workers.Wait()
	res.Elapsed = time.Since(start)
	res.Requests = int(sent.Load())
	res.OK = len(res.latencies)
	slices.Sort(res.latencies)
	return res, nil
}

func check2xx(_ int, resp *http.Response, body []byte) error {
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("status %d: %.200s", resp.StatusCode, body)
	}
	return nil
}

// newTransport keeps one connection per worker alive and dials loopback
// only.
func newTransport(conns int) *http.Transport {
	d := &net.Dialer{
		Timeout: 10 * time.Second,
		// Control sees the address after name resolution, so a name that
		// resolves elsewhere is refused too.
		Control: func(network, address string, _ syscall.RawConn) error {
			ap, err := netip.ParseAddrPort(address)
			if err != nil || !ap.Addr().Unmap().IsLoopback() {
				return fmt.Errorf("load: %s is not a loopback address: only local servers may be loaded", address)
			}
			return nil
		},
	}
	return &http.Transport{
		Proxy:               nil, // never through a proxy from the environment
		DialContext:         d.DialContext,
		MaxIdleConns:        conns,
		MaxIdleConnsPerHost: conns,
		MaxConnsPerHost:     conns,
		IdleConnTimeout:     time.Minute,
		ForceAttemptHTTP2:   false,
		DisableCompression:  true,
	}
}
