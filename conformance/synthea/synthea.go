// Package synthea reads the Synthea patient bundles in testdata/synthea
// (transaction bundles of POST entries with urn:uuid fullUrls), for the
// tests and benchmarks that need realistic resources.
package synthea

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/google/uuid"
)

// Entry is one entry of a bundle: its fullUrl, its resource type and the
// resource as the bundle holds it.
type Entry struct {
	FullURL  string
	Type     string
	Resource json.RawMessage
}

// Bundle is one bundle file's entries, in order.
type Bundle struct {
	File    string
	Entries []Entry
}

// Load reads every dir/*.json bundle, in file-name order. It is an error
// for dir to hold none.
func Load(dir string) ([]Bundle, error) {
	files, err := filepath.Glob(filepath.Join(dir, "*.json"))
	if err != nil {
		return nil, err
	}
	if len(files) == 0 {
		return nil, fmt.Errorf("synthea: no bundles in %s", dir)
	}
	var out []Bundle
	for _, f := range files {
		raw, err := os.ReadFile(f)
		if err != nil {
			return nil, err
		}
		var bundle struct {
			Entry []struct {
				FullURL  string          `json:"fullUrl"`
				Resource json.RawMessage `json:"resource"`
			} `json:"entry"`
		}
		if err := json.Unmarshal(raw, &bundle); err != nil {
			return nil, fmt.Errorf("synthea: %s: %w", filepath.Base(f), err)
		}
		b := Bundle{File: filepath.Base(f)}
		for i, e := range bundle.Entry {
			var head struct{ ResourceType string }
			if err := json.Unmarshal(e.Resource, &head); err != nil || head.ResourceType == "" {
				return nil, fmt.Errorf("synthea: %s entry %d: no resourceType", b.File, i)
			}
			b.Entries = append(b.Entries, Entry{FullURL: e.FullURL, Type: head.ResourceType, Resource: e.Resource})
		}
		out = append(out, b)
	}
	return out, nil
}

// Entries is Load flattened: every entry of every bundle.
func Entries(dir string) ([]Entry, error) {
	bundles, err := Load(dir)
	if err != nil {
		return nil, err
	}
	var out []Entry
	for _, b := range bundles {
		out = append(out, b.Entries...)
	}
	return out, nil
}

// Renew returns a copy of a Synthea transaction bundle (the file's bytes)
// in which every urn:uuid fullUrl's uuid is replaced by a fresh one, at
// every occurrence: in fullUrl, in the resource's id and in every
// reference to it. The copy is a new set of patients as far as a store is
// concerned, so that benchmarks loading the same files again do real work.
func Renew(bundle []byte) ([]byte, error) {
	var b struct {
		Entry []struct {
			FullURL string `json:"fullUrl"`
		} `json:"entry"`
	}
	if err := json.Unmarshal(bundle, &b); err != nil {
		return nil, fmt.Errorf("synthea: %w", err)
	}
	var pairs []string
	for _, e := range b.Entry {
		old, ok := strings.CutPrefix(e.FullURL, "urn:uuid:")
		if !ok {
			return nil, fmt.Errorf("synthea: fullUrl %q is not a urn:uuid", e.FullURL)
		}
		pairs = append(pairs, old, uuid.NewString())
	}
	return []byte(strings.NewReplacer(pairs...).Replace(string(bundle))), nil
}
