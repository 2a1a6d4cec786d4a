// Package mongotest gives tests a MongoDB wire-protocol server: the one named
// by KILN_TEST_MONGO_URI when set, otherwise FerretDB started in-process with
// its SQLite handler on a random loopback port, data in a temporary directory.
package mongotest

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"testing"
	"time"

	"github.com/FerretDB/FerretDB/ferretdb"
)

// Server is a running MongoDB-compatible server for one test.
type Server struct {
	// URI is the connection string (mongodb://host:port/).
	URI string
	// FerretDB reports whether the server is the in-process FerretDB, which
	// lacks multi-document transactions and some operators.
	FerretDB bool
}

// EnvURI names the environment variable that points tests at an external MongoDB.
const EnvURI = "KILN_TEST_MONGO_URI"

// Start returns a server for t; the in-process one stops when t ends.
func Start(t testing.TB) *Server {
	t.Helper()
	if uri := os.Getenv(EnvURI); uri != "" {
		return &Server{URI: uri}
	}
	dir := t.TempDir()
	f, err := ferretdb.New(&ferretdb.Config{
		Listener:  ferretdb.ListenerConfig{TCP: "127.0.0.1:0"},
		Handler:   "sqlite",
		SQLiteURL: "file:" + dir + "/",
		Logger:    slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	if err != nil {
		t.Fatalf("mongotest: start FerretDB: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = f.Run(ctx)
	}()
	t.Cleanup(func() {
		cancel()
		<-done
	})
	uri := f.MongoDBURI()
	if err := waitListening(uri); err != nil {
		t.Fatalf("mongotest: %v", err)
	}
	return &Server{URI: uri, FerretDB: true}
}

func waitListening(uri string) error {
	host := uri[len("mongodb://"):]
	if i := len(host) - 1; i >= 0 && host[i] == '/' {
		host = host[:i]
	}
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
