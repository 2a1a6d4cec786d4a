package sqlite

import (
	"context"
	"database/sql"
	"time"
)

// A checkpoint copies the pages the WAL holds back into the database file.
// SQLite's default is to run one inside the COMMIT that takes the WAL past
// 1,000 pages, on the committing connection: with index rows a create
// dirties some twenty pages, so every few batches one COMMIT (and every
// caller waiting on it) paid for copying a thousand pages and two more
// fsyncs. Instead the writer's connection never checkpoints
// (wal_autocheckpoint=0) and this goroutine, on a connection of its own,
// runs PASSIVE checkpoints after commits, at most every
// checkpointInterval. PASSIVE takes no lock a reader or the writer waits
// for; it copies what no reader still needs and leaves the rest for the
// next round. The WAL is reset to its start by the first write after a
// checkpoint that copied everything.
const checkpointInterval = 100 * time.Millisecond

type checkpointer struct {
	db   *sql.DB
	kick chan struct{} // buffered (1): the writer never waits on it
	stop chan struct{}
	done chan struct{}
}

func newCheckpointer(db *sql.DB) *checkpointer {
	return &checkpointer{db: db, kick: make(chan struct{}, 1), stop: make(chan struct{}), done: make(chan struct{})}
}

// committed tells the checkpointer a batch was committed.
func (c *checkpointer) committed() {
	select {
	case c.kick <- struct{}{}:
	default:
	}
}

func (c *checkpointer) run() {
	defer close(c.done)
	for {
		select {
		case <-c.stop:
			return
		case <-c.kick:
		}
		// Failures (another process checkpointing: SQLITE_BUSY) only
		// leave the work to the next round.
		_, _ = c.db.ExecContext(context.Background(), "PRAGMA wal_checkpoint(PASSIVE)")
		select {
		case <-c.stop:
			return
		case <-time.After(checkpointInterval):
		}
	}
}

// close stops the goroutine; the database handle is the store's to close.
func (c *checkpointer) close() {
	close(c.stop)
	<-c.done
}
