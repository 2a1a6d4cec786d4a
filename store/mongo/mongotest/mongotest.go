// Package mongotest gives tests a MongoDB wire-protocol server: the one named
// by KILN_TEST_MONGO_URI when set, otherwise FerretDB (v1, the embeddable
// github.com/FerretDB/FerretDB/ferretdb package with its SQLite handler)
// started in-process on a random loopback port, its data in a temporary
// directory. Tests of any package can use it.
package mongotest

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/FerretDB/FerretDB/ferretdb"
)

// EnvURI names the environment variable that points tests at an external
// MongoDB (a replica set, to test transactions).
const EnvURI = "KILN_TEST_MONGO_URI"

// Server is a running MongoDB-compatible server for one test.
type Server struct {
	// URI is the connection string (mongodb://host:port/).
	URI string
	// FerretDB reports whether the server is the in-process FerretDB, which
	// lacks multi-document transactions, Decimal128 and some operators.
	FerretDB bool

	mu      sync.Mutex
	addr    string // host:port, kept across Stop and Start
	dir     string
	cancel  context.CancelFunc
	stopped chan struct{}
}

// Start returns a server for t; the in-process one stops when t ends.
func Start(t testing.TB) *Server {
	t.Helper()
	if uri := os.Getenv(EnvURI); uri != "" {
		return &Server{URI: uri}
	}
	s := &Server{FerretDB: true, dir: t.TempDir(), addr: "127.0.0.1:0"}
	if err := s.run(); err != nil {
		t.Fatalf("mongotest: %v", err)
	}
	t.Cleanup(s.Stop)
	return s
}

func (s *Server) run() error {
	f, err := ferretdb.New(&ferretdb.Config{
		Listener:  ferretdb.ListenerConfig{TCP: s.addr},
		Handler:   "sqlite",
		SQLiteURL: "file:" + s.dir + "/",
		Logger:    slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	if err != nil {
		return fmt.Errorf("start FerretDB: %w", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = f.Run(ctx)
	}()
	uri := f.MongoDBURI() // blocks until the listener has its address
	host := strings.TrimSuffix(strings.TrimPrefix(uri, "mongodb://"), "/")
	if err := waitListening(host); err != nil {
		cancel()
		<-done
		return err
	}
	s.mu.Lock()
	s.URI, s.addr, s.cancel, s.stopped = uri, host, cancel, done
	s.mu.Unlock()
	return nil
}

// Stop stops the in-process server (its data stays for Restart): clients
// then see a server that has gone away. No-op for an external server.
func (s *Server) Stop() {
	s.mu.Lock()
	cancel, done := s.cancel, s.stopped
	s.cancel, s.stopped = nil, nil
	s.mu.Unlock()
	if cancel != nil {
		cancel()
		<-done
	}
}

// Restart starts the stopped in-process server again on the same address
// and data.
func (s *Server) Restart(t testing.TB) {
	t.Helper()
	if !s.FerretDB {
		t.Skip("mongotest: an external server cannot be restarted by the test")
	}
	s.Stop()
	var err error
	for range 50 { // the port may linger for a moment
		if err = s.run(); err == nil {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("mongotest: restart: %v", err)
}

func waitListening(host string) error {
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", host, time.Second)
		if err == nil {
			c.Close()
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("FerretDB not listening at %s: %w", host, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
