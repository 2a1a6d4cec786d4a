package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/parquet-go/parquet-go"
	"github.com/schollz/progressbar/v3"
)

// exportConfig is what `kiln export` reads from its flags.
type exportConfig struct {
	url      string
	types    string
	since    string
	group    string
	out      string
	token    string
	parallel int
	quiet    bool
	format   string // ndjson or parquet
}

// exportCmd is `kiln export`: a Bulk Data client for any FHIR server
// (export.html): kick-off, polling with a progress bar, parallel
// download of the files into --out, a count check of every file, and a
// summary.
func exportCmd(ctx context.Context, args []string) error {
	var cfg exportConfig
	fs := flag.NewFlagSet("kiln export", flag.ContinueOnError)
	fs.StringVar(&cfg.url, "url", "", "FHIR base URL of the server (required)")
	fs.StringVar(&cfg.types, "type", "", "resource types to export, comma-separated (_type)")
	fs.StringVar(&cfg.since, "since", "", "only resources changed after this instant (_since), e.g. 2024-01-31T00:00:00Z")
	fs.StringVar(&cfg.group, "group", "", "export this Group's members (Group/[id]/$export)")
	fs.StringVar(&cfg.out, "out", "", "directory to write the files to (required)")
	fs.StringVar(&cfg.format, "format", "ndjson", "ndjson, or parquet (_outputFormat=application/vnd.apache.parquet, a Kiln extension)")
	fs.StringVar(&cfg.token, "token", os.Getenv("KILN_EXPORT_TOKEN"), "bearer access token, if the server needs one (KILN_EXPORT_TOKEN)")
	fs.IntVar(&cfg.parallel, "parallel", 4, "files downloaded at once")
	fs.BoolVar(&cfg.quiet, "quiet", false, "no progress bar")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if cfg.url == "" || cfg.out == "" {
		return errors.New("kiln export needs --url and --out")
	}
	if cfg.parallel <= 0 {
		return errors.New("--parallel must be positive")
	}
	if cfg.format != "ndjson" && cfg.format != "parquet" {
		return errors.New("--format is ndjson or parquet")
	}
	if err := os.MkdirAll(cfg.out, 0o700); err != nil {
		return err
	}
	c := &exportClient{cfg: cfg, http: &http.Client{Timeout: 10 * time.Minute}}
	start := time.Now()
	status, err := c.kickoff(ctx)
	if err != nil {
		return err
	}
	m, err := c.poll(ctx, status)
	if err != nil {
		return err
	}
	files := append(append(m.Output, m.Error...), m.Deleted...)
	n, size, err := c.download(ctx, files)
	if err != nil {
		return err
	}
	counts := map[string]int{}
	for _, f := range m.Output {
		counts[f.Type] += f.Count
	}
	fmt.Printf("exported %d resources in %d files (%s) to %s in %s; transactionTime %s\n",
		n, len(files), humanBytes(size), cfg.out, time.Since(start).Round(time.Millisecond), m.TransactionTime)
	for typ, n := range counts {
		fmt.Printf("  %-28s %d\n", typ, n)
	}
	if len(m.Error) > 0 {
		fmt.Printf("  the server reported issues in %d error file(s)\n", len(m.Error))
	}
	// E-DL-02: tell the server the files can go.
	c.request(ctx, http.MethodDelete, status, nil)
	return nil
}

type exportClient struct {
	cfg  exportConfig
	http *http.Client
}

type exportFile struct {
	Type  string `json:"type"`
	URL   string `json:"url"`
	Count int    `json:"count"`
}

type clientManifest struct {
	TransactionTime string       `json:"transactionTime"`
	Output          []exportFile `json:"output"`
	Error           []exportFile `json:"error"`
	Deleted         []exportFile `json:"deleted"`
}

func (c *exportClient) request(ctx context.Context, method, u string, header http.Header) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, method, u, nil)
	if err != nil {
		return nil, err
	}
	for k, v := range header {
		req.Header[k] = v
	}
	if c.cfg.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.cfg.token)
	}
	return c.http.Do(req)
}

// serverError reads an error answer's OperationOutcome diagnostics.
func serverError(what string, res *http.Response) error {
	body, _ := io.ReadAll(io.LimitReader(res.Body, 64<<10))
	var oo struct {
		Issue []struct{ Diagnostics string }
	}
	msg := strings.TrimSpace(string(body))
	if json.Unmarshal(body, &oo) == nil && len(oo.Issue) > 0 {
		var d []string
		for _, is := range oo.Issue {
			d = append(d, is.Diagnostics)
		}
		msg = strings.Join(d, "; ")
	}
	return fmt.Errorf("%s: %s: %s", what, res.Status, msg)
}

func (c *exportClient) kickoff(ctx context.Context) (string, error) {
	base := strings.TrimRight(c.cfg.url, "/")
	path := base + "/$export"
	if c.cfg.group != "" {
		path = base + "/Group/" + url.PathEscape(c.cfg.group) + "/$export"
	}
	q := url.Values{}
	if c.cfg.types != "" {
		q.Set("_type", c.cfg.types)
	}
	if c.cfg.since != "" {
		q.Set("_since", c.cfg.since)
	}
	if c.cfg.format == "parquet" {
		q.Set("_outputFormat", "application/vnd.apache.parquet")
	}
	if len(q) > 0 {
		path += "?" + q.Encode()
	}
	res, err := c.request(ctx, http.MethodGet, path, http.Header{
		"Accept": {"application/fhir+json"}, "Prefer": {"respond-async"}})
	if err != nil {
		return "", err
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusAccepted {
		return "", serverError("kick-off", res)
	}
	loc := res.Header.Get("Content-Location")
	if loc == "" {
		return "", errors.New("kick-off: 202 without Content-Location")
	}
	return loc, nil
}

// poll waits for the manifest, honouring Retry-After (else backing off
// from 1 s, E-ST-01), with a spinner showing X-Progress.
func (c *exportClient) poll(ctx context.Context, status string) (clientManifest, error) {
	bar := progressbar.NewOptions(-1, progressbar.OptionSetWriter(c.progressOut()),
		progressbar.OptionSetDescription("exporting"), progressbar.OptionSpinnerType(14),
		progressbar.OptionClearOnFinish())
	defer bar.Finish()
	wait := time.Second
	for {
		res, err := c.request(ctx, http.MethodGet, status, http.Header{"Accept": {"application/json"}})
		if err != nil {
			return clientManifest{}, err
		}
		switch res.StatusCode {
		case http.StatusOK:
			var m clientManifest
			err := json.NewDecoder(res.Body).Decode(&m)
			res.Body.Close()
			if err != nil {
				return clientManifest{}, fmt.Errorf("manifest: %w", err)
			}
			return m, nil
		case http.StatusAccepted, http.StatusTooManyRequests:
			res.Body.Close()
			if p := res.Header.Get("X-Progress"); p != "" {
				bar.Describe(p)
			}
			d := wait
			if s, err := strconv.Atoi(res.Header.Get("Retry-After")); err == nil && s >= 0 {
				d = time.Duration(s) * time.Second
			} else {
				wait = min(2*wait, time.Minute)
			}
			deadline := time.Now().Add(d)
			for time.Now().Before(deadline) {
				bar.Add(1)
				select {
				case <-ctx.Done():
					return clientManifest{}, ctx.Err()
				case <-time.After(100 * time.Millisecond):
				}
			}
		default:
			defer res.Body.Close()
			return clientManifest{}, serverError("export", res)
		}
	}
}

func (c *exportClient) progressOut() io.Writer {
	if c.cfg.quiet {
		return io.Discard
	}
	return os.Stderr
}

// download fetches the files, cfg.parallel at a time, into cfg.out under
// their own names, checking that each has as many lines as the manifest
// says. It returns the lines and bytes written.
func (c *exportClient) download(ctx context.Context, files []exportFile) (int, int64, error) {
	total := 0
	for _, f := range files {
		total += f.Count
	}
	bar := progressbar.NewOptions(total, progressbar.OptionSetWriter(c.progressOut()),
		progressbar.OptionSetDescription("downloading"), progressbar.OptionShowCount(),
		progressbar.OptionClearOnFinish())
	defer bar.Finish()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		mu    sync.Mutex
		lines int
		size  int64
		first error
		wg    sync.WaitGroup
		sem   = make(chan struct{}, c.cfg.parallel)
	)
	for _, f := range files {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			n, b, err := c.fetch(ctx, f, bar)
			mu.Lock()
			defer mu.Unlock()
			lines, size = lines+n, size+b
			if err != nil && first == nil {
				first = err
				cancel()
			}
		}()
	}
	wg.Wait()
	return lines, size, first
}

func (c *exportClient) fetch(ctx context.Context, f exportFile, bar *progressbar.ProgressBar) (int, int64, error) {
	u, err := url.Parse(f.URL)
	if err != nil {
		return 0, 0, err
	}
	name := filepath.Base(u.Path)
	if name == "." || name == "/" || strings.ContainsAny(name, `/\`) {
		return 0, 0, fmt.Errorf("file URL %s has no usable name", f.URL)
	}
	accept := "application/fhir+ndjson"
	if strings.HasSuffix(name, ".parquet") {
		accept = "application/vnd.apache.parquet"
	}
	res, err := c.request(ctx, http.MethodGet, f.URL, http.Header{"Accept": {accept}})
	if err != nil {
		return 0, 0, err
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK {
		return 0, 0, serverError("GET "+f.URL, res)
	}
	out, err := os.Create(filepath.Join(c.cfg.out, name))
	if err != nil {
		return 0, 0, err
	}
	defer out.Close()
	if strings.HasSuffix(name, ".parquet") {
		return c.fetchParquet(f, name, out, res.Body, bar)
	}
	w := bufio.NewWriterSize(out, 1<<20)
	r := bufio.NewReaderSize(res.Body, 1<<20)
	n, size := 0, int64(0)
	for {
		line, err := r.ReadSlice('\n')
		if len(line) > 0 {
			if len(bytes.TrimSpace(line)) > 0 {
				n++
				bar.Add(1)
			}
			w.Write(line)
			size += int64(len(line))
		}
		if errors.Is(err, bufio.ErrBufferFull) {
			continue
		}
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return n, size, fmt.Errorf("GET %s: %w", f.URL, err)
		}
	}
	if err := w.Flush(); err != nil {
		return n, size, err
	}
	if n != f.Count {
		return n, size, fmt.Errorf("%s: %d resources, the manifest says %d", name, n, f.Count)
	}
	return n, size, out.Close()
}

// fetchParquet writes a Parquet file and checks its row count (from the
// file's footer) against the manifest.
func (c *exportClient) fetchParquet(f exportFile, name string, out *os.File, body io.Reader, bar *progressbar.ProgressBar) (int, int64, error) {
	size, err := io.Copy(out, body)
	if err != nil {
		return 0, size, fmt.Errorf("GET %s: %w", f.URL, err)
	}
	pf, err := parquet.OpenFile(out, size)
	if err != nil {
		return 0, size, fmt.Errorf("%s is not a Parquet file: %w", name, err)
	}
	n := int(pf.NumRows())
	bar.Add(n)
	if n != f.Count {
		return n, size, fmt.Errorf("%s: %d resources, the manifest says %d", name, n, f.Count)
	}
	return n, size, out.Close()
}

func humanBytes(n int64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.1f GiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}

// bulkMinPoll is bulk.Config.MinPoll for --export-min-poll: 0 turns the
// check off, which bulk.Config spells negative (its zero is the default).
func bulkMinPoll(d time.Duration) time.Duration {
	if d == 0 {
		return -1
	}
	return d
}
