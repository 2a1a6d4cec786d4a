package smart

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"

	"golang.org/x/oauth2"

	"github.com/kiln-fhir/kiln/store"
	"github.com/kiln-fhir/kiln/store/sqlite"
)

func TestMain(m *testing.M) {
	// Sign-ins are the slow part of these tests; TestPasswordHash checks
	// the production cost.
	argonTime, argonMemory = 1, 8*1024
	os.Exit(m.Run())
}

// appRedirect is where test apps are registered to receive codes; the
// browser stops there instead of following it.
const appRedirect = "https://app.example/callback"

// env is one authorization server on a real SQLite file, served over
// loopback HTTP, with a tiny resource server (GET {base}/whoami) that
// answers the Grant of the request's token, so tests see what enforcement
// would see.
type env struct {
	t    *testing.T
	srv  *httptest.Server
	st   recordStore
	path string // the SQLite file (empty on another backend)
	s    *Server
	base string
	// last response headers seen by the oauth2 client's transport
	mu      sync.Mutex
	headers http.Header
}

func newEnv(t *testing.T, tweak func(*Config)) *env {
	t.Helper()
	path := filepath.Join(t.TempDir(), "kiln.db")
	st, err := sqlite.Open(t.Context(), sqlite.Config{Path: path})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	e := newEnvOn(t, tweak, st)
	e.path = path
	return e
}

// recordStore is a backend's store as the tests use it.
type recordStore interface {
	store.Records
	Close() error
}

// newEnvOn is newEnv on the records of another backend.
func newEnvOn(t *testing.T, tweak func(*Config), st recordStore) *env {
	t.Helper()
	e := &env{t: t, st: st}
	var h http.Handler
	e.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { h.ServeHTTP(w, r) }))
	t.Cleanup(e.srv.Close)
	e.base = e.srv.URL + "/fhir"
	cfg := Config{BaseURL: e.base}
	if tweak != nil {
		tweak(&cfg)
	}
	var err error
	e.s, err = New(t.Context(), cfg, st)
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle("/fhir/.well-known/", e.s.Handler())
	mux.Handle("/fhir/auth/", e.s.Handler())
	mux.HandleFunc("GET /fhir/whoami", func(w http.ResponseWriter, r *http.Request) {
		g, err := e.s.Authenticate(r)
		if err != nil {
			w.Header().Set("WWW-Authenticate", "Bearer")
			http.Error(w, err.Error(), http.StatusUnauthorized)
			return
		}
		json.NewEncoder(w).Encode(g)
	})
	h = mux
	return e
}

// ctx carries the HTTP client x/oauth2 uses: it records the response
// headers, so tests can check Cache-Control on token responses.
func (e *env) ctx() context.Context {
	return context.WithValue(e.t.Context(), oauth2.HTTPClient, &http.Client{Transport: roundTripper(func(r *http.Request) (*http.Response, error) {
		resp, err := http.DefaultTransport.RoundTrip(r)
		if err == nil {
			e.mu.Lock()
			e.headers = resp.Header.Clone()
			e.mu.Unlock()
		}
		return resp, err
	})})
}

type roundTripper func(*http.Request) (*http.Response, error)

func (f roundTripper) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

func (e *env) user(name, fhirUser string) {
	e.t.Helper()
	if _, err := AddUser(e.t.Context(), e.st, name, name+"-password", fhirUser); err != nil {
		e.t.Fatal(err)
	}
}

func (e *env) client(spec ClientSpec) Registered {
	e.t.Helper()
	if spec.Name == "" {
		spec.Name = "Test App"
	}
	if spec.RedirectURIs == nil && spec.JWKS == nil && spec.JWKSURL == "" {
		spec.RedirectURIs = []string{appRedirect}
	}
	reg, err := AddClient(e.t.Context(), e.st, spec)
	if err != nil {
		e.t.Fatal(err)
	}
	return reg
}

func (e *env) oauth(reg Registered, scopes ...string) *oauth2.Config {
	style := oauth2.AuthStyleInParams
	if reg.ClientSecret != "" {
		style = oauth2.AuthStyleInHeader
	}
	return &oauth2.Config{
		ClientID: reg.ClientID, ClientSecret: reg.ClientSecret, RedirectURL: appRedirect, Scopes: scopes,
		Endpoint: oauth2.Endpoint{AuthURL: e.base + "/auth/authorize", TokenURL: e.base + "/auth/token", AuthStyle: style},
	}
}

// browser is a user agent with a cookie jar that does not follow the
// final redirect to the app.
type browser struct {
	e *env
	c *http.Client
}

func (e *env) browser() *browser {
	jar, _ := cookiejar.New(nil)
	return &browser{e: e, c: &http.Client{Jar: jar, CheckRedirect: func(r *http.Request, via []*http.Request) error {
		if strings.HasPrefix(r.URL.String(), appRedirect) {
			return http.ErrUseLastResponse
		}
		return nil
	}}}
}

type page struct {
	status int
	body   string
	loc    *url.URL // a redirect that left the server
}

func (b *browser) do(req *http.Request) page {
	b.e.t.Helper()
	resp, err := b.c.Do(req)
	if err != nil {
		b.e.t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	p := page{status: resp.StatusCode, body: string(body)}
	if l := resp.Header.Get("Location"); l != "" && resp.StatusCode/100 == 3 {
		p.loc, _ = url.Parse(l)
	}
	return p
}

func (b *browser) get(u string) page {
	req, _ := http.NewRequest(http.MethodGet, u, nil)
	return b.do(req)
}

func (b *browser) post(u string, form url.Values) page {
	req, _ := http.NewRequest(http.MethodPost, u, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	return b.do(req)
}

var hiddenRE = regexp.MustCompile(`<input type="hidden" name="(\w+)" value="([^"]*)">`)
var scopeBoxRE = regexp.MustCompile(`name="scope" value="([^"]*)"`)

func hidden(body string) url.Values {
	v := url.Values{}
	for _, m := range hiddenRE.FindAllStringSubmatch(body, -1) {
		v.Set(m[1], m[2])
	}
	return v
}

// offered lists the scopes the consent page offers.
func offered(body string) []string {
	var out []string
	for _, m := range scopeBoxRE.FindAllStringSubmatch(body, -1) {
		out = append(out, htmlUnescape(m[1]))
	}
	return out
}

func htmlUnescape(s string) string {
	return strings.NewReplacer("&amp;", "&", "&#43;", "+", "&#34;", `"`, "&#39;", "'", "&lt;", "<", "&gt;", ">").Replace(s)
}

// login signs in on the login page of an authorization request and
// returns the consent page.
func (b *browser) login(authURL, user, pass string) page {
	b.e.t.Helper()
	p := b.get(authURL)
	if p.status != http.StatusOK || !strings.Contains(p.body, `name="password"`) {
		b.e.t.Fatalf("authorize: want the login page, got %d %v\n%s", p.status, p.loc, p.body)
	}
	form := hidden(p.body)
	form.Set("username", user)
	form.Set("password", pass)
	return b.post(b.e.base+"/auth/login", form)
}

// approve approves a consent page, granting keep (nil: every offered
// scope), and returns the redirect to the app.
func (b *browser) approve(consent page, keep func(string) bool, extra url.Values) *url.URL {
	b.e.t.Helper()
	if consent.status != http.StatusOK || !strings.Contains(consent.body, `name="approve"`) {
		b.e.t.Fatalf("want the consent page, got %d %v\n%s", consent.status, consent.loc, consent.body)
	}
	form := hidden(consent.body)
	for _, sc := range offered(consent.body) {
		if keep == nil || keep(sc) {
			form.Add("scope", sc)
		}
	}
	form.Set("approve", "approve")
	for k, v := range extra {
		form[k] = v
	}
	p := b.post(b.e.base+"/auth/consent", form)
	if p.loc == nil {
		b.e.t.Fatalf("consent: want a redirect to the app, got %d\n%s", p.status, p.body)
	}
	return p.loc
}

// pkce is a fresh verifier and the authorize options that send its S256
// challenge, the audience and any extra parameters.
func (e *env) authURL(cfg *oauth2.Config, state, verifier string, extra ...string) string {
	opts := []oauth2.AuthCodeOption{oauth2.S256ChallengeOption(verifier), oauth2.SetAuthURLParam("aud", e.base)}
	for i := 0; i+1 < len(extra); i += 2 {
		opts = append(opts, oauth2.SetAuthURLParam(extra[i], extra[i+1]))
	}
	return cfg.AuthCodeURL(state, opts...)
}

// standalone runs a whole standalone launch for user and returns the
// token (the user's password is user+"-password").
func (e *env) standalone(cfg *oauth2.Config, user string, keep func(string) bool) *oauth2.Token {
	e.t.Helper()
	v := oauth2.GenerateVerifier()
	b := e.browser()
	loc := b.approve(b.login(e.authURL(cfg, "state-12345678", v), user, user+"-password"), keep, nil)
	code := loc.Query().Get("code")
	if code == "" || loc.Query().Get("state") != "state-12345678" {
		e.t.Fatalf("redirect %v: want code and the same state", loc)
	}
	tok, err := cfg.Exchange(e.ctx(), code, oauth2.VerifierOption(v))
	if err != nil {
		e.t.Fatalf("exchange: %v", err)
	}
	return tok
}

// whoami is the Grant the resource server sees for tok, or the status.
func (e *env) whoami(tok string) (Grant, int) {
	e.t.Helper()
	req, _ := http.NewRequest(http.MethodGet, e.base+"/whoami", nil)
	if tok != "" {
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	var g Grant
	if resp.StatusCode == http.StatusOK {
		json.NewDecoder(resp.Body).Decode(&g)
	}
	return g, resp.StatusCode
}

// postForm posts a form to an /auth endpoint, optionally with Basic
// credentials, and decodes the JSON answer.
func (e *env) postForm(path string, form url.Values, basicID, basicSecret string) (int, http.Header, map[string]any) {
	e.t.Helper()
	req, _ := http.NewRequest(http.MethodPost, e.base+path, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept", "application/json")
	if basicID != "" {
		req.SetBasicAuth(url.QueryEscape(basicID), url.QueryEscape(basicSecret))
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	var out map[string]any
	json.NewDecoder(resp.Body).Decode(&out)
	return resp.StatusCode, resp.Header, out
}

func retrieveErr(err error) (int, string) {
	var re *oauth2.RetrieveError
	if errors.As(err, &re) {
		return re.Response.StatusCode, re.ErrorCode
	}
	return 0, ""
}
