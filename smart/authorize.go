package smart

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"html/template"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/ory/fosite"
	"github.com/ory/fosite/token/jwt"

	"github.com/kiln-fhir/kiln/store"
)

const (
	loginCookie  = "kiln_login"
	loginLife    = 8 * time.Hour
	pendingLife  = 15 * time.Minute
	launchLife   = time.Hour
	maxFormBytes = 64 << 10
)

// An S256 challenge is the base64url SHA-256 of the verifier: 43
// characters (RFC 7636 §4.2).
var pkceChallengeRE = regexp.MustCompile(`^[A-Za-z0-9_-]{43}$`)

// pending is an authorization request between the authorize endpoint and
// the login or consent form: the request's parameters, which user it
// waits on, and the form's CSRF token.
type pending struct {
	Params   url.Values `json:"params"`
	CSRF     string     `json:"csrf"`
	Username string     `json:"username,omitempty"`
}

// launchContext is what an EHR launch handle stands for
// (app-launch.html#launch-app-ehr-launch).
type launchContext struct {
	Patient   string `json:"patient,omitempty"`
	Encounter string `json:"encounter,omitempty"`
}

// CreateLaunch records an EHR launch context and returns its handle, the
// opaque `launch` parameter the EHR passes to the app. It is valid for an
// hour and binds to one authorization.
func CreateLaunch(ctx context.Context, rs Records, patient, encounter string) (string, error) {
	if patient == "" && encounter == "" {
		return "", errors.New("a launch needs a patient or an encounter")
	}
	for _, id := range []string{patient, encounter} {
		if id != "" && !fhirIDRE.MatchString(id) {
			return "", errors.New("patient and encounter are resource ids ([A-Za-z0-9-.]{1,64})")
		}
	}
	b, _ := json.Marshal(launchContext{Patient: patient, Encounter: encounter})
	id := randomToken(24)
	if err := rs.InsertRecord(ctx, store.Record{Kind: kindLaunch, Key: id, Value: b, Expires: time.Now().Add(launchLife)}); err != nil {
		return "", err
	}
	return id, nil
}

// launch is POST /auth/launch: an EHR user (a practitioner's token) or an
// EHR back end (a system/ token) creates a launch context.
func (s *Server) launch(w http.ResponseWriter, r *http.Request) {
	g, err := s.Authenticate(r)
	if err != nil {
		w.Header().Set("WWW-Authenticate", `Bearer error="invalid_token"`)
		writeJSON(w, http.StatusUnauthorized, map[string]string{"error": "invalid_token"})
		return
	}
	system := slices.ContainsFunc(g.Scopes, func(sc Scope) bool { return sc.Context == "system" })
	if !system && (g.FHIRUser == "" || strings.HasPrefix(g.FHIRUser, "Patient/")) {
		writeJSON(w, http.StatusForbidden, map[string]string{"error": "insufficient_scope",
			"error_description": "only a practitioner or a system client can create launch contexts"})
		return
	}
	var lc launchContext
	if strings.HasPrefix(r.Header.Get("Content-Type"), "application/json") {
		if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxFormBytes)).Decode(&lc); err != nil {
			writeJSON(w, http.StatusBadRequest, map[string]string{"error": "invalid_request"})
			return
		}
	} else {
		r.Body = http.MaxBytesReader(w, r.Body, maxFormBytes)
		if err := r.ParseForm(); err != nil {
			writeJSON(w, http.StatusBadRequest, map[string]string{"error": "invalid_request"})
			return
		}
		lc = launchContext{Patient: r.PostForm.Get("patient"), Encounter: r.PostForm.Get("encounter")}
	}
	id, err := CreateLaunch(r.Context(), s.rs, lc.Patient, lc.Encounter)
	if err != nil {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": "invalid_request", "error_description": err.Error()})
		return
	}
	writeJSON(w, http.StatusCreated, map[string]string{"launch": id, "iss": s.cfg.BaseURL})
}

// authorize is the authorization endpoint, GET or POST
// (app-launch.html#obtain-authorization-code).
func (s *Server) authorize(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, maxFormBytes)
	if err := r.ParseForm(); err != nil {
		s.errorPage(w, http.StatusBadRequest, "The authorization request could not be read.")
		return
	}
	s.authorizeParams(w, r, r.Form)
}

// checkClientRedirect refuses, without redirecting, an unknown client or
// a redirect_uri that is not exactly one the client registered (RFC 6749
// §4.1.2.1: never redirect to an unverified URI).
func (s *Server) checkClientRedirect(ctx context.Context, params url.Values) (*Client, string) {
	c, err := getClient(ctx, s.rs, params.Get("client_id"))
	if err != nil {
		return nil, "The app is not registered with this server (unknown client_id)."
	}
	ru := params.Get("redirect_uri")
	if ru == "" || !slices.Contains(c.RedirectURIs, ru) {
		return nil, "The redirect_uri is not one this app registered."
	}
	s.decorate(c)
	return c, ""
}

// parse runs fosite's checks (response_type, PKCE S256, scopes, state)
// on the request with its scopes cut to the registration, and SMART's:
// aud must be this FHIR base, launch must name a live launch context.
func (s *Server) parse(ctx context.Context, c *Client, params url.Values) (fosite.AuthorizeRequester, *launchContext, error) {
	params = cloneValues(params)
	keep, _ := allowed(c.Scopes, strings.Fields(params.Get("scope")))
	params.Set("scope", strings.Join(keep, " "))
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, s.endpoint("authorize")+"?"+params.Encode(), nil)
	ar, err := s.oauth.NewAuthorizeRequest(ctx, req)
	if err != nil {
		return ar, nil, err
	}
	// app-launch.html#pkce: S256 required, plain never. fosite checks
	// PKCE only when it issues the code; checking here refuses the
	// request before the user signs in for nothing.
	if params.Get("code_challenge_method") != "S256" || !pkceChallengeRE.MatchString(params.Get("code_challenge")) {
		return ar, nil, fosite.ErrInvalidRequest.WithHint("PKCE is required: code_challenge with code_challenge_method=S256.")
	}
	aud := params.Get("aud")
	if aud == "" {
		aud = params.Get("resource")
	}
	// app-launch.html: aud SHALL be checked; a foreign aud gets no code.
	if strings.TrimRight(aud, "/") != s.cfg.BaseURL {
		return ar, nil, fosite.ErrInvalidRequest.WithHintf("aud must be this FHIR server's base URL, %s.", s.cfg.BaseURL)
	}
	var lc *launchContext
	if l := params.Get("launch"); l != "" {
		rec, err := s.rs.GetRecord(ctx, kindLaunch, l)
		if err != nil {
			return ar, nil, fosite.ErrInvalidRequest.WithHint("The launch parameter is unknown or expired.")
		}
		lc = &launchContext{}
		if err := json.Unmarshal(rec.Value, lc); err != nil {
			return ar, nil, fosite.ErrServerError.WithWrap(err)
		}
	}
	return ar, lc, nil
}

func (s *Server) authorizeParams(w http.ResponseWriter, r *http.Request, params url.Values) {
	ctx := r.Context()
	c, msg := s.checkClientRedirect(ctx, params)
	if c == nil {
		s.errorPage(w, http.StatusBadRequest, msg)
		return
	}
	ar, _, err := s.parse(ctx, c, params)
	if err != nil {
		s.oauth.WriteAuthorizeError(ctx, w, ar, err)
		return
	}
	p := pending{Params: params, CSRF: randomToken(24)}
	u := s.loggedIn(r)
	if u != nil {
		p.Username = u.Username
	}
	id := randomToken(24)
	b, _ := json.Marshal(p)
	if err := s.rs.PutRecord(ctx, store.Record{Kind: kindPending, Key: id, Value: b, Expires: s.cfg.Now().Add(pendingLife)}); err != nil {
		s.serverError(w, err)
		return
	}
	if u == nil {
		s.render(w, http.StatusOK, loginPage, pageData{App: c.Name, Action: s.endpoint("login"), Pending: id, CSRF: p.CSRF})
		return
	}
	s.renderConsent(w, c, u, ar, id, p.CSRF)
}

func (s *Server) renderConsent(w http.ResponseWriter, c *Client, u *User, ar fosite.AuthorizeRequester, id, csrf string) {
	d := pageData{App: c.Name, Action: s.endpoint("consent"), Pending: id, CSRF: csrf, User: u.Username}
	n := 0
	item := func(sc string) scopeItem {
		n++
		return scopeItem{ID: "scope" + strconv.Itoa(n), Scope: sc, Words: describe(sc)}
	}
	for _, sc := range ar.GetRequestedScopes() {
		it := item(sc)
		for _, g := range granular(sc) {
			it.Parts = append(it.Parts, item(g))
		}
		d.Scopes = append(d.Scopes, it)
	}
	// A user who is not a patient picks the patient for launch/patient
	// (app-launch.html: standalone patient picker); a patient's own
	// record is the context.
	d.AskPatient = u.Patient() == "" && ar.GetRequestedScopes().Has("launch/patient") && ar.GetRequestForm().Get("launch") == ""
	s.render(w, http.StatusOK, consentPage, d)
}

// loggedIn returns the user of the request's login cookie, or nil.
func (s *Server) loggedIn(r *http.Request) *User {
	ck, err := r.Cookie(loginCookie)
	if err != nil || ck.Value == "" {
		return nil
	}
	rec, err := s.rs.GetRecord(r.Context(), kindLogin, ck.Value)
	if err != nil {
		return nil
	}
	u, err := getUser(r.Context(), s.rs, string(rec.Value))
	if err != nil {
		return nil
	}
	return u
}

func (s *Server) takePending(r *http.Request) (*pending, bool) {
	id := r.PostForm.Get("pending")
	if id == "" {
		return nil, false
	}
	rec, err := s.rs.TakeRecord(r.Context(), kindPending, id)
	if err != nil {
		return nil, false
	}
	var p pending
	if json.Unmarshal(rec.Value, &p) != nil {
		return nil, false
	}
	// The form's CSRF token must be the one issued with it: a page on
	// another site cannot read it, so it cannot post this form.
	if subtle.ConstantTimeCompare([]byte(p.CSRF), []byte(r.PostForm.Get("csrf"))) != 1 {
		return nil, false
	}
	return &p, true
}

// loginForm is POST /auth/login.
func (s *Server) loginForm(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	r.Body = http.MaxBytesReader(w, r.Body, maxFormBytes)
	if err := r.ParseForm(); err != nil {
		s.errorPage(w, http.StatusBadRequest, "The form could not be read.")
		return
	}
	p, ok := s.takePending(r)
	if !ok {
		s.errorPage(w, http.StatusForbidden, "This sign-in form has expired or was not issued by this server. Start again from the app.")
		return
	}
	c, msg := s.checkClientRedirect(ctx, p.Params)
	if c == nil {
		s.errorPage(w, http.StatusBadRequest, msg)
		return
	}
	u, err := s.login(ctx, r.PostForm.Get("username"), r.PostForm.Get("password"))
	if err != nil {
		status, text := http.StatusUnauthorized, "Wrong username or password."
		switch {
		case errors.Is(err, errLocked):
			status, text = http.StatusTooManyRequests, "Too many failed sign-in attempts. Try again later."
		case !errors.Is(err, errBadLogin):
			s.serverError(w, err)
			return
		}
		// A fresh form, so the old CSRF token cannot be replayed.
		id := randomToken(24)
		p.CSRF = randomToken(24)
		b, _ := json.Marshal(p)
		if err := s.rs.PutRecord(ctx, store.Record{Kind: kindPending, Key: id, Value: b, Expires: s.cfg.Now().Add(pendingLife)}); err != nil {
			s.serverError(w, err)
			return
		}
		s.render(w, status, loginPage, pageData{App: c.Name, Action: s.endpoint("login"), Pending: id, CSRF: p.CSRF, Error: text})
		return
	}
	s.signIn(w, r, u, p.Params)
}

// signIn starts a login session for u and resumes the authorization
// request (post/redirect/get).
func (s *Server) signIn(w http.ResponseWriter, r *http.Request, u *User, params url.Values) {
	sid := randomToken(32)
	if err := s.rs.PutRecord(r.Context(), store.Record{Kind: kindLogin, Key: sid, Value: []byte(u.Username), Expires: s.cfg.Now().Add(loginLife)}); err != nil {
		s.serverError(w, err)
		return
	}
	http.SetCookie(w, &http.Cookie{Name: loginCookie, Value: sid, Path: s.basePath + "/auth/", HttpOnly: true,
		Secure: s.secureCookies(), SameSite: http.SameSiteLaxMode, MaxAge: int(loginLife.Seconds())})
	http.Redirect(w, r, s.endpoint("authorize")+"?"+params.Encode(), http.StatusSeeOther)
}

func (s *Server) secureCookies() bool { return strings.HasPrefix(s.cfg.BaseURL, "https:") }

// consent is POST /auth/consent: the user approves some or all of the
// requested scopes, or denies.
func (s *Server) consent(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	r.Body = http.MaxBytesReader(w, r.Body, maxFormBytes)
	if err := r.ParseForm(); err != nil {
		s.errorPage(w, http.StatusBadRequest, "The form could not be read.")
		return
	}
	p, ok := s.takePending(r)
	u := s.loggedIn(r)
	if !ok || u == nil || p.Username == "" || p.Username != u.Username {
		s.errorPage(w, http.StatusForbidden, "This consent form has expired, was already used, or was not issued to you. Start again from the app.")
		return
	}
	c, msg := s.checkClientRedirect(ctx, p.Params)
	if c == nil {
		s.errorPage(w, http.StatusBadRequest, msg)
		return
	}
	ar, lc, err := s.parse(ctx, c, p.Params)
	if err != nil {
		s.oauth.WriteAuthorizeError(ctx, w, ar, err)
		return
	}
	if r.PostForm.Get("approve") == "" {
		s.oauth.WriteAuthorizeError(ctx, w, ar, fosite.ErrAccessDenied.WithHint("The user denied access."))
		return
	}
	granted := chosenScopes(ar.GetRequestedScopes(), r.PostForm["scope"])

	sess := newSession()
	sess.Subject, sess.Username, sess.FHIRUser = u.Subject, u.Username, u.FHIRUser
	if slices.Contains(granted, "launch") && lc != nil {
		// EHR launch: the context is the EHR's, which shows its own
		// banner. The handle is used up.
		if _, err := s.rs.TakeRecord(ctx, kindLaunch, ar.GetRequestForm().Get("launch")); err != nil {
			s.oauth.WriteAuthorizeError(ctx, w, ar, fosite.ErrInvalidRequest.WithHint("The launch parameter was already used or expired."))
			return
		}
		sess.Patient, sess.Encounter = lc.Patient, lc.Encounter
	} else {
		granted = slices.DeleteFunc(granted, func(sc string) bool { return sc == "launch" || sc == "launch/encounter" })
		switch {
		case u.Patient() != "":
			sess.Patient = u.Patient()
		case slices.Contains(granted, "launch/patient"):
			if id := strings.TrimSpace(r.PostForm.Get("patient")); fhirIDRE.MatchString(id) {
				sess.Patient = id
			}
		}
		sess.Banner = sess.Patient != ""
	}
	if sess.Patient == "" {
		// scopes-and-launch-context.html: granting a patient/ scope SHALL
		// establish a patient context; without one there is nothing they
		// could reach.
		granted = slices.DeleteFunc(granted, func(sc string) bool {
			p, ok := ParseScope(sc)
			return sc == "launch/patient" || ok && p.Context == "patient"
		})
	}
	if sess.Encounter == "" {
		granted = slices.DeleteFunc(granted, func(sc string) bool { return sc == "launch/encounter" })
	}
	for _, sc := range granted {
		ar.GrantScope(sc)
	}
	ar.GrantAudience(s.cfg.BaseURL)
	now := time.Now().UTC()
	if slices.Contains(granted, "online_access") && !slices.Contains(granted, "offline_access") {
		sess.OnlineUntil = now.Add(loginLife)
	}
	sess.Claims = &jwt.IDTokenClaims{
		Subject: u.Subject, Issuer: s.cfg.Issuer, AuthTime: now, RequestedAt: ar.GetRequestedAt(),
		Extra: map[string]any{},
	}
	if slices.Contains(granted, "fhirUser") && u.FHIRUser != "" {
		// scopes-and-launch-context.html#scopes-for-requesting-identity-data
		sess.Claims.Extra["fhirUser"] = s.absolute(u.FHIRUser)
	}
	sess.Headers = &jwt.Headers{Extra: map[string]any{}}
	resp, err := s.oauth.NewAuthorizeResponse(ctx, ar, sess)
	if err != nil {
		s.oauth.WriteAuthorizeError(ctx, w, ar, err)
		return
	}
	s.oauth.WriteAuthorizeResponse(ctx, w, ar, resp)
}

// chosenScopes is what the user approved of requested, in request
// order: each requested scope ticked and, for one not ticked, the
// category scopes offered in its place (granular) that were. A category
// scope beside its ticked resource-level scope adds nothing and is left
// out; a scope the page did not offer is ignored.
func chosenScopes(requested []string, chosen []string) []string {
	var out []string
	add := func(sc string) {
		if !slices.Contains(out, sc) {
			out = append(out, sc)
		}
	}
	for _, sc := range requested {
		if slices.Contains(chosen, sc) {
			add(sc)
			continue
		}
		for _, g := range granular(sc) {
			if slices.Contains(chosen, g) {
				add(g)
			}
		}
	}
	return out
}

func cloneValues(v url.Values) url.Values {
	out := url.Values{}
	for k, vs := range v {
		out[k] = slices.Clone(vs)
	}
	return out
}

type scopeItem struct {
	ID, Scope, Words string
	// Parts are category scopes the user may grant instead (granular).
	Parts []scopeItem
}

type pageData struct {
	App, Action, Pending, CSRF, User, Error, Message string
	Upstream, UpstreamAction                         string
	Scopes                                           []scopeItem
	AskPatient                                       bool
}

func (s *Server) render(w http.ResponseWriter, status int, t *template.Template, d pageData) {
	if s.up != nil {
		d.Upstream, d.UpstreamAction = s.up.name, s.endpoint("upstream")
	}
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	// No framing (clickjacking of the approve button), no scripts.
	h.Set("X-Frame-Options", "DENY")
	h.Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'")
	h.Set("Referrer-Policy", "no-referrer")
	w.WriteHeader(status)
	if err := t.Execute(w, d); err != nil {
		s.log.Error("smart: page", "err", err)
	}
}

func (s *Server) errorPage(w http.ResponseWriter, status int, msg string) {
	s.render(w, status, errorPage, pageData{Message: msg})
}

// Pages: plain HTML that works without JavaScript, with labels on every
// field, a visible focus ring and text contrast above WCAG AA.
const pageHead = `<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{{block "title" .}}Kiln{{end}}</title>
<style>
body{font-family:system-ui,sans-serif;max-width:34rem;margin:2rem auto;padding:0 1rem;color:#1a1a1a;background:#fff;line-height:1.5}
label{font-weight:600}
input[type=text],input[type=password]{display:block;width:100%;box-sizing:border-box;padding:.5rem;font-size:1rem;border:1px solid #555;margin:.25rem 0 1rem}
fieldset{border:1px solid #555;padding:1rem}
fieldset div{margin:.4rem 0}
fieldset.parts{margin:.4rem 0 .4rem 1.5rem;border-style:dashed}
code{font-size:.85em;color:#333}
button{padding:.6rem 1.2rem;font-size:1rem;border:2px solid #005a9c;margin-right:.5rem;cursor:pointer}
button.primary{background:#005a9c;color:#fff}
button.secondary{background:#fff;color:#005a9c}
:focus{outline:3px solid #b35c00;outline-offset:2px}
.error{color:#9e2a2b;border-left:4px solid #9e2a2b;padding-left:.5rem}
</style></head><body><main>`

var loginPage = template.Must(template.New("login").Parse(pageHead + `
<h1>Sign in</h1>
<p><strong>{{.App}}</strong> asks to connect to your health records.</p>
{{if .Error}}<p class="error" role="alert">{{.Error}}</p>{{end}}
<form method="post" action="{{.Action}}">
<input type="hidden" name="pending" value="{{.Pending}}">
<input type="hidden" name="csrf" value="{{.CSRF}}">
<label for="username">Username</label>
<input id="username" name="username" type="text" autocomplete="username" required autofocus>
<label for="password">Password</label>
<input id="password" name="password" type="password" autocomplete="current-password" required>
<button class="primary" type="submit">Sign in</button>
</form>
{{if .Upstream}}<form method="post" action="{{.UpstreamAction}}">
<input type="hidden" name="pending" value="{{.Pending}}">
<input type="hidden" name="csrf" value="{{.CSRF}}">
<p>or</p><button class="secondary" type="submit">Sign in with {{.Upstream}}</button>
</form>{{end}}
</main></body></html>`))

var consentPage = template.Must(template.New("consent").Parse(pageHead + `
<h1>Allow {{.App}}?</h1>
<p>Signed in as <strong>{{.User}}</strong>. <strong>{{.App}}</strong> asks for the access below.
Untick anything you do not want to share; you can revoke access later.</p>
<form method="post" action="{{.Action}}">
<input type="hidden" name="pending" value="{{.Pending}}">
<input type="hidden" name="csrf" value="{{.CSRF}}">
<fieldset><legend>{{.App}} may:</legend>
{{range .Scopes}}<div><input type="checkbox" id="{{.ID}}" name="scope" value="{{.Scope}}" checked>
<label for="{{.ID}}">{{.Words}}</label> <code>{{.Scope}}</code>
{{if .Parts}}<fieldset class="parts"><legend>Or, with the box above unticked, share only these kinds:</legend>
{{range .Parts}}<div><input type="checkbox" id="{{.ID}}" name="scope" value="{{.Scope}}">
<label for="{{.ID}}">{{.Words}}</label> <code>{{.Scope}}</code></div>
{{end}}</fieldset>{{end}}</div>
{{end}}</fieldset>
{{if .AskPatient}}<p><label for="patient">Patient id (the record to open)</label>
<input id="patient" name="patient" type="text" autocomplete="off"></p>{{end}}
<p><button class="primary" type="submit" name="approve" value="approve">Allow</button>
<button class="secondary" type="submit" name="deny" value="deny">Deny</button></p>
</form></main></body></html>`))

var errorPage = template.Must(template.New("error").Parse(pageHead + `
<h1>Cannot continue</h1>
<p class="error" role="alert">{{.Message}}</p>
</main></body></html>`))
