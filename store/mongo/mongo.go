// Package mongo is Kiln's MongoDB backend (go.mongodb.org/mongo-driver/v2).
//
// Collections. One collection holds the current version of every resource
// (resources), one every version (versions); the resource type is a field,
// not a collection name. One collection per type would give ~150
// collections with the same indexes each (thousands of indexes to build
// and keep in memory), and system-level search, history and the joins of
// chains and _has would span collections. With the type in the key,
// resources is sharded on {_id: "hashed"} (_id is "Type/id"), spreading
// writes evenly while keeping the compare-and-set on _id single-shard;
// versions on {_id: "hashed"} too (_id is "Type/id/version").
//
// Writes. The current document is the compare-and-set point: a create
// inserts it (the unique _id refuses a second), an update replaces it only
// while it still holds the version read. On a replica set or sharded
// cluster every Commit runs in one multi-document transaction (current,
// version and index entries together); on a standalone server, which has
// none, a Commit of one change is applied with the compare-and-set alone,
// and one of several changes is refused with store.ErrNoTransactions
// before anything is written.
package mongo

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"strings"
	"sync"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
	"go.mongodb.org/mongo-driver/v2/mongo/readconcern"
	"go.mongodb.org/mongo-driver/v2/mongo/readpref"
	"go.mongodb.org/mongo-driver/v2/mongo/writeconcern"

	"github.com/kiln-fhir/kiln/store"
)

// Options configure Open. The zero value is the recommended configuration.
type Options struct {
	// Database is the database name; empty takes the one in the URI, or "kiln".
	Database string
	// Timeout bounds server selection, connecting and each operation
	// (default 5 s): an unreachable server is store.ErrUnavailable after it.
	Timeout time.Duration
	// WeakWrites turns off write concern majority (w:1 then).
	WeakWrites bool
	// NoCausal turns off causally consistent sessions (read-your-writes).
	NoCausal bool
	// Logger receives what startup found (server version, topology).
	Logger *slog.Logger
}

// Store is the MongoDB store. It is safe for concurrent use.
type Store struct {
	client    *mongo.Client
	db        *mongo.Database
	resources *mongo.Collection
	versions  *mongo.Collection
	timeout   time.Duration
	causal    bool
	// SMART records and bulk export jobs (records.go, jobs.go).
	records, jobs, claims *mongo.Collection
	// Export files (jobs.go): GridFS, and the collection of chunks from
	// before it.
	files        *mongo.GridFSBucket
	uploadMu     sync.Mutex
	legacyChunks *mongo.Collection

	// Topology found at Open.
	Version      string
	Transactions bool // replica set or sharded cluster
	FerretDB     bool
}

// Collection names.
const (
	resourcesName = "resources"
	versionsName  = "versions"
)

// Open connects to uri, checks the server, and creates the indexes the
// store needs (idempotently). It fails with store.ErrUnavailable when the
// server cannot be reached within the timeout.
func Open(ctx context.Context, uri string, o Options) (*Store, error) {
	if o.Timeout <= 0 {
		o.Timeout = 5 * time.Second
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	copts := options.Client().ApplyURI(uri).
		SetServerSelectionTimeout(o.Timeout).
		SetConnectTimeout(o.Timeout).
		SetTimeout(o.Timeout).
		SetReadPreference(readpref.Primary())
	if copts.WriteConcern == nil && !o.WeakWrites {
		copts.SetWriteConcern(writeconcern.Majority())
	}
	if copts.ReadConcern == nil {
		copts.SetReadConcern(readconcern.Majority())
	}
	if err := copts.Validate(); err != nil {
		return nil, fmt.Errorf("mongo: %w", err)
	}
	client, err := mongo.Connect(copts)
	if err != nil {
		return nil, fmt.Errorf("mongo: connect: %w", err)
	}
	name := o.Database
	if name == "" {
		name = databaseFromURI(uri)
	}
	db := client.Database(name)
	s := &Store{client: client, db: db, timeout: o.Timeout, causal: !o.NoCausal,
		resources: db.Collection(resourcesName), versions: db.Collection(versionsName),
		records: db.Collection(recordsName), jobs: db.Collection(jobsName),
		claims: db.Collection(claimsName), legacyChunks: db.Collection(legacyChunksName),
		files: db.GridFSBucket(options.GridFSBucket().SetName(filesBucket))}
	if err := s.inspect(ctx); err != nil {
		_ = client.Disconnect(context.Background())
		return nil, err
	}
	if err := s.ensureIndexes(ctx); err != nil {
		_ = client.Disconnect(context.Background())
		return nil, err
	}
	o.Logger.Info("mongo: connected", "database", name, "version", s.Version,
		"transactions", s.Transactions, "ferretdb", s.FerretDB)
	if !s.Transactions {
		o.Logger.Warn("mongo: the server is standalone (no multi-document transactions): " +
			"commits of several changes (transaction bundles) are refused; run a replica set")
	}
	return s, nil
}

func databaseFromURI(uri string) string {
	rest := uri
	if i := strings.Index(rest, "://"); i >= 0 {
		rest = rest[i+3:]
	}
	if i := strings.IndexByte(rest, '/'); i >= 0 {
		db := rest[i+1:]
		if j := strings.IndexAny(db, "?"); j >= 0 {
			db = db[:j]
		}
		if db != "" {
			return db
		}
	}
	return "kiln"
}

// inspect reads the server version and topology.
func (s *Store) inspect(ctx context.Context) error {
	var hello struct {
		SetName string `bson:"setName"`
		Msg     string `bson:"msg"`
	}
	if err := s.db.RunCommand(ctx, bson.D{{Key: "hello", Value: 1}}).Decode(&hello); err != nil {
		return fmt.Errorf("mongo: hello: %w", s.mapErr(ctx, err))
	}
	var info struct {
		Version      string `bson:"version"`
		FerretDB     any    `bson:"ferretdbVersion"`
		VersionArray []int  `bson:"versionArray"`
	}
	if err := s.db.RunCommand(ctx, bson.D{{Key: "buildInfo", Value: 1}}).Decode(&info); err != nil {
		return fmt.Errorf("mongo: buildInfo: %w", s.mapErr(ctx, err))
	}
	s.Version = info.Version
	s.FerretDB = info.FerretDB != nil
	if len(info.VersionArray) > 0 && info.VersionArray[0] < 5 && !s.FerretDB {
		return fmt.Errorf("mongo: server version %s: Kiln needs MongoDB 5.0 or later", info.Version)
	}
	s.Transactions = !s.FerretDB && (hello.SetName != "" || hello.Msg == "isdbgrid")
	return nil
}

// ensureIndexes creates the indexes (createIndexes is idempotent for
// indexes that exist with the same definition).
func (s *Store) ensureIndexes(ctx context.Context) error {
	idx := func(keys ...string) mongo.IndexModel {
		d := bson.D{}
		for _, k := range keys {
			dir := 1
			if strings.HasPrefix(k, "-") {
				dir, k = -1, k[1:]
			}
			d = append(d, bson.E{Key: k, Value: dir})
		}
		return mongo.IndexModel{Keys: d}
	}
	res := []mongo.IndexModel{
		idx("type", "lu"),
		idx("type", "ix.p", "ix.c", "ix.s"),
		idx("type", "ix.p", "ix.t"),
		idx("type", "ix.p", "ix.r"),
		idx("type", "ix.p", "ix.ri"),
		idx("type", "ix.p", "ix.v"),
		idx("type", "ix.p", "ix.lo", "ix.hi"),
		idx("type", "ix.p", "ix.k0.c"),
	}
	ver := []mongo.IndexModel{
		idx("type", "id", "-v"),
		idx("-lu", "type", "id", "-v"),
		idx("type", "-lu", "id", "-v"),
	}
	if err := s.createMissing(ctx, s.resources, res); err != nil {
		return fmt.Errorf("mongo: create indexes on %s: %w", resourcesName, s.mapErr(ctx, err))
	}
	if err := s.createMissing(ctx, s.versions, ver); err != nil {
		return fmt.Errorf("mongo: create indexes on %s: %w", versionsName, s.mapErr(ctx, err))
	}
	if err := s.recordIndexes(ctx); err != nil {
		return fmt.Errorf("mongo: create indexes on %s: %w", recordsName, s.mapErr(ctx, err))
	}
	if err := s.jobIndexes(ctx); err != nil {
		return fmt.Errorf("mongo: create indexes on %s: %w", jobsName, s.mapErr(ctx, err))
	}
	return nil
}

// createMissing creates the indexes of models that coll does not have yet,
// by their default names (field_dir_…). Asking only for missing ones keeps
// startup cheap when several Kiln processes start at once (and FerretDB
// drops the connection on a createIndexes of existing indexes).
func (s *Store) createMissing(ctx context.Context, coll *mongo.Collection, models []mongo.IndexModel) error {
	cur, err := coll.Indexes().List(ctx)
	if err != nil {
		return err
	}
	var have []struct {
		Name string `bson:"name"`
	}
	if err := cur.All(ctx, &have); err != nil {
		return err
	}
	var missing []mongo.IndexModel
	for _, m := range models {
		var name strings.Builder
		for i, e := range m.Keys.(bson.D) {
			if i > 0 {
				name.WriteByte('_')
			}
			fmt.Fprintf(&name, "%s_%v", e.Key, e.Value)
		}
		if !slices.ContainsFunc(have, func(h struct {
			Name string `bson:"name"`
		}) bool {
			return h.Name == name.String()
		}) {
			missing = append(missing, m)
		}
	}
	if len(missing) == 0 {
		return nil
	}
	_, err = coll.Indexes().CreateMany(ctx, missing)
	return err
}

// Ping implements store.Pinger.
func (s *Store) Ping(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := s.client.Ping(ctx, readpref.Primary()); err != nil {
		return fmt.Errorf("mongo: ping: %w", s.mapErr(ctx, err))
	}
	return nil
}

// Close disconnects.
func (s *Store) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), s.timeout)
	defer cancel()
	return s.client.Disconnect(ctx)
}

// Database is the name of the store's database.
func (s *Store) Database() string { return s.db.Name() }

// Drop removes the store's collections (tests, and `kiln` admin tools).
func (s *Store) Drop(ctx context.Context) error { return s.db.Drop(ctx) }

// mapErr turns driver errors into store sentinels: the caller's own
// cancellation stays itself; a server that cannot be reached is
// store.ErrUnavailable.
func (s *Store) mapErr(ctx context.Context, err error) error {
	if err == nil {
		return nil
	}
	if cerr := ctx.Err(); cerr != nil {
		return fmt.Errorf("%w (%v)", cerr, err)
	}
	var ne net.Error
	switch {
	case mongo.IsNetworkError(err), mongo.IsTimeout(err), errors.As(err, &ne),
		errors.Is(err, mongo.ErrClientDisconnected), errors.Is(err, context.DeadlineExceeded):
		return fmt.Errorf("%w: %v", store.ErrUnavailable, err)
	}
	if strings.Contains(err.Error(), "server selection") {
		return fmt.Errorf("%w: %v", store.ErrUnavailable, err)
	}
	return err
}

var _ store.Store = (*Store)(nil)
