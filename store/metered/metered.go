// Package metered wraps any store.Store with Prometheus latency and error
// metrics, so every backend is measured the same way.
package metered

import (
	"context"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/kiln-fhir/kiln/store"
)

// Store is a store.Store that records how long each call takes.
type Store struct {
	store.Store
	latency *prometheus.HistogramVec
}

// Wrap returns s instrumented; the metrics are registered with reg.
func Wrap(s store.Store, backend string, reg prometheus.Registerer) *Store {
	m := &Store{Store: s, latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:        "kiln_store_operation_duration_seconds",
		Help:        "Storage backend call latency by operation and result.",
		ConstLabels: prometheus.Labels{"backend": backend},
		Buckets:     prometheus.ExponentialBuckets(0.0001, 2, 18),
	}, []string{"operation", "result"})}
	reg.MustRegister(m.latency)
	return m
}

func (m *Store) observe(op string, start time.Time, err error) {
	result := "ok"
	switch {
	case err == nil:
	case store.IsAnswer(err):
		result = "answer" // not found, gone, conflict: answers, not failures
	default:
		result = "error"
	}
	m.latency.WithLabelValues(op, result).Observe(time.Since(start).Seconds())
}

func (m *Store) Read(ctx context.Context, typ, id string) (store.Resource, error) {
	start := time.Now()
	r, err := m.Store.Read(ctx, typ, id)
	m.observe("read", start, err)
	return r, err
}

func (m *Store) VRead(ctx context.Context, typ, id string, version int64) (store.Resource, error) {
	start := time.Now()
	r, err := m.Store.VRead(ctx, typ, id, version)
	m.observe("vread", start, err)
	return r, err
}

func (m *Store) Commit(ctx context.Context, changes ...store.Change) error {
	start := time.Now()
	err := m.Store.Commit(ctx, changes...)
	m.observe("commit", start, err)
	return err
}

func (m *Store) History(ctx context.Context, q store.HistoryQuery) (store.HistoryPage, error) {
	start := time.Now()
	p, err := m.Store.History(ctx, q)
	m.observe("history", start, err)
	return p, err
}

func (m *Store) Ping(ctx context.Context) error {
	start := time.Now()
	err := m.Store.Ping(ctx)
	m.observe("ping", start, err)
	return err
}
