//go:build unix

package sqlite

import (
	"errors"
	"fmt"
	"os"
	"syscall"
)

// lockFile takes an advisory lock on path (created if missing): exclusive
// for a store with a read cache, which must be the file's only writer,
// shared otherwise, so that a caching store and any other store never
// have the file open together, while stores without a cache still share
// it. The lock goes with the process: a killed server leaves none behind.
func lockFile(path string, exclusive bool) (*os.File, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, err
	}
	how := syscall.LOCK_SH
	if exclusive {
		how = syscall.LOCK_EX
	}
	for {
		err = syscall.Flock(int(f.Fd()), how|syscall.LOCK_NB)
		if !errors.Is(err, syscall.EINTR) {
			break
		}
	}
	if err != nil {
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, fmt.Errorf("%w: %s is held by another process (a store with a read cache needs the database to itself)", ErrLocked, path)
		}
		return nil, err
	}
	return f, nil
}
