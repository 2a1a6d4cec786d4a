//go:build !unix

package sqlite

import (
	"errors"
	"os"
)

// lockFile: advisory file locks are only implemented for unix systems. A
// read cache is only coherent with the lock, so it is refused here.
func lockFile(path string, exclusive bool) (*os.File, error) {
	if exclusive {
		return nil, errors.New("the read cache needs a file lock, not implemented on this platform: open with CacheBytes 0")
	}
	return nil, nil
}
