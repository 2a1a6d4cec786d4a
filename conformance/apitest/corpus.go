package apitest

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"
)

// The search corpus: every Synthea bundle and every official example,
// written over HTTP so that the search cases (search_cases.go) have a known
// data set to be right or wrong about.

// corpusResource is one resource of the corpus, ready to PUT.
type corpusResource struct {
	typ, id string
	from    string // the file it came from, for messages
	body    []byte
}

// syntheaFiles returns Options.Synthea, or else the Synthea bundles of the
// module the tests run in (testdata/synthea beside go.mod), so that Kiln's
// own test run loads the corpus without wiring. nil means none.
func syntheaFiles(opts Options) (map[string][]byte, error) {
	if opts.Synthea != nil {
		return opts.Synthea, nil
	}
	dir, err := os.Getwd()
	if err != nil {
		return nil, err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			break
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return nil, nil
		}
		dir = parent
	}
	files, err := filepath.Glob(filepath.Join(dir, "testdata", "synthea", "*.json"))
	if err != nil || len(files) == 0 {
		return nil, err
	}
	out := map[string][]byte{}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			return nil, err
		}
		out[filepath.Base(f)] = b
	}
	return out, nil
}

// syntheaResources turns a Synthea transaction bundle (POST entries with
// urn:uuid fullUrls) into resources to PUT: each takes the uuid of its
// fullUrl as id, and every "urn:uuid:<u>" that names an entry of the
// bundle becomes "<Type>/<u>" (what a transaction does, http.html#trules).
func syntheaResources(name string, data []byte) ([]corpusResource, error) {
	var bundle struct {
		ResourceType string `json:"resourceType"`
		Type         string `json:"type"`
		Entry        []struct {
			FullURL  string          `json:"fullUrl"`
			Resource json.RawMessage `json:"resource"`
		} `json:"entry"`
	}
	if err := json.Unmarshal(data, &bundle); err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	if bundle.ResourceType != "Bundle" || bundle.Type != "transaction" {
		return nil, fmt.Errorf("%s: a %s %s, want a transaction Bundle", name, bundle.Type, bundle.ResourceType)
	}
	refs := map[string]string{} // "urn:uuid:u" → "Type/u"
	type entry struct {
		typ, id string
		res     map[string]any
	}
	entries := make([]entry, 0, len(bundle.Entry))
	for i, e := range bundle.Entry {
		id, ok := strings.CutPrefix(e.FullURL, "urn:uuid:")
		if !ok || id == "" {
			return nil, fmt.Errorf("%s: entry %d: fullUrl %q is not a urn:uuid", name, i, e.FullURL)
		}
		dec := json.NewDecoder(bytes.NewReader(e.Resource))
		dec.UseNumber() // keep decimals as written (1.50 stays 1.50)
		var res map[string]any
		if err := dec.Decode(&res); err != nil {
			return nil, fmt.Errorf("%s: entry %d: %w", name, i, err)
		}
		typ, _ := res["resourceType"].(string)
		if typ == "" {
			return nil, fmt.Errorf("%s: entry %d has no resourceType", name, i)
		}
		refs[e.FullURL] = typ + "/" + id
		entries = append(entries, entry{typ, id, res})
	}
	out := make([]corpusResource, 0, len(entries))
	for _, e := range entries {
		res := rewriteRefs(e.res, refs).(map[string]any)
		res["id"] = e.id
		var b bytes.Buffer
		enc := json.NewEncoder(&b)
		enc.SetEscapeHTML(false)
		if err := enc.Encode(res); err != nil {
			return nil, fmt.Errorf("%s: %s/%s: %w", name, e.typ, e.id, err)
		}
		out = append(out, corpusResource{typ: e.typ, id: e.id, from: name, body: b.Bytes()})
	}
	return out, nil
}

// rewriteRefs replaces every string that is a key of refs, anywhere in v.
func rewriteRefs(v any, refs map[string]string) any {
	switch v := v.(type) {
	case map[string]any:
		for k, x := range v {
			v[k] = rewriteRefs(x, refs)
		}
	case []any:
		for i, x := range v {
			v[i] = rewriteRefs(x, refs)
		}
	case string:
		if r, ok := refs[v]; ok {
			return r
		}
	}
	return v
}

// exampleResources lists the official examples to PUT as they are (a
// Bundle example is stored as a Bundle), leaving out the known-invalid ones.
func exampleResources(opts Options) ([]corpusResource, error) {
	var out []corpusResource
	for name, body := range opts.Examples {
		if _, bad := opts.Invalid[name]; bad {
			continue
		}
		var head struct {
			ResourceType string `json:"resourceType"`
			ID           string `json:"id"`
		}
		if err := json.Unmarshal(body, &head); err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
		if head.ResourceType == "" || head.ID == "" {
			return nil, fmt.Errorf("%s: no resourceType or id", name)
		}
		out = append(out, corpusResource{typ: head.ResourceType, id: head.ID, from: name, body: body})
	}
	return out, nil
}

// loadCorpus writes the corpus with PUT (update as create, so that the ids
// the cases name are the ids on the server) and reports what it loaded.
// It needs an empty server: the expected results assume that nothing else
// matches.
func loadCorpus(t *testing.T, c *Client, opts Options) {
	t.Helper()
	if n := systemTotal(t, c); n != 0 {
		t.Fatalf("the search corpus needs an empty server (it holds %d versions): run the search scenario first, or set Options.SkipCorpus", n)
	}
	synthea, err := syntheaFiles(opts)
	if err != nil {
		t.Fatalf("reading the Synthea bundles: %v", err)
	}
	if len(synthea) == 0 || len(opts.Examples) == 0 {
		t.Fatalf("the search corpus needs the Synthea bundles (Options.Synthea or testdata/synthea) and the examples (Options.Examples); have %d and %d",
			len(synthea), len(opts.Examples))
	}
	var all []corpusResource
	names := make([]string, 0, len(synthea))
	for name := range synthea {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		rs, err := syntheaResources(name, synthea[name])
		if err != nil {
			t.Fatal(err)
		}
		all = append(all, rs...)
	}
	fromSynthea := len(all)
	examples, err := exampleResources(opts)
	if err != nil {
		t.Fatal(err)
	}
	all = append(all, examples...)
	all = append(all, terminologyResources...)

	start := time.Now()
	errs := putAll(c, all, 8)
	took := time.Since(start)
	for i, err := range errs {
		if i == 10 {
			t.Errorf("… and %d more resources failed to load", len(errs)-10)
			break
		}
		t.Error(err)
	}
	t.Logf("search corpus: %d resources (%d from %d Synthea bundles, %d examples; %d invalid examples left out) loaded with PUT in %v, %.0f/s; %d failed",
		len(all), fromSynthea, len(synthea), len(examples), len(opts.Examples)-len(examples), took.Round(time.Millisecond),
		float64(len(all))/took.Seconds(), len(errs))
}

// putAll PUTs the resources with a few concurrent writers. It does not use
// Client.Do, whose failures stop the calling goroutine's test.
func putAll(c *Client, all []corpusResource, workers int) []error {
	var (
		mu   sync.Mutex
		errs []error
		wg   sync.WaitGroup
	)
	work := make(chan corpusResource)
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for res := range work {
				if err := put(c, res); err != nil {
					mu.Lock()
					errs = append(errs, err)
					mu.Unlock()
				}
			}
		}()
	}
	for _, res := range all {
		work <- res
	}
	close(work)
	wg.Wait()
	return errs
}

func put(c *Client, res corpusResource) error {
	req, err := http.NewRequest(http.MethodPut, c.Base+"/"+res.typ+"/"+res.id, bytes.NewReader(res.body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/fhir+json")
	req.Header.Set("Prefer", "return=minimal")
	resp, err := c.HTTP.Do(req)
	if err != nil {
		return fmt.Errorf("PUT %s/%s (%s): %w", res.typ, res.id, res.from, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusCreated && resp.StatusCode != http.StatusOK {
		return fmt.Errorf("PUT %s/%s (%s): status %d: %s", res.typ, res.id, res.from, resp.StatusCode, truncate(body))
	}
	return nil
}
