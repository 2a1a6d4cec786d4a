package rest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	refs "github.com/kiln-fhir/kiln/fhir/bundle" // rest has its own bundle type
	"github.com/kiln-fhir/kiln/fhir/jsonvalue"
	"github.com/kiln-fhir/kiln/fhir/outcome"
	"github.com/kiln-fhir/kiln/fhir/resource"
	"github.com/kiln-fhir/kiln/store"
)

// Batch and transaction (http.html#transaction): POST [base] with a Bundle.
//
// Both run the same steps in the order http.html#trules prescribes
// (DELETE, POST, PUT/PATCH, GET/HEAD) whatever the order of the entries (a
// history Bundle, replayed as a batch, keeps its own order, oldest first):
//
//  1. identify: every write's target (Type/id) is decided first,
//     conditional creates, updates and deletes by search, and each
//     fullUrl is mapped to its target;
//  2. plan: each resource's references are rewritten (urn:uuid and
//     relative fullUrls to the targets, conditional references by one
//     search each), the resource is validated and the store.Change that
//     writes it computed, by the same code the single interactions use;
//  3. commit: a transaction commits every change in ONE store.Commit, so
//     the store applies all or none; a batch runs steps 1–3 for one entry
//     at a time, each entry committed before the next starts;
//  4. read: GET and HEAD entries run through the router, after the writes,
//     so they see the transaction's results.
//
// A transaction stops at the first failing entry and answers with that
// entry's status and an OperationOutcome whose expression names it
// (Bundle.entry[n]); nothing is stored. A batch records each entry's
// failure in its response and goes on.

// txBundle is a batch or transaction Bundle as posted.
type txBundle struct {
	ResourceType string    `json:"resourceType"`
	Type         string    `json:"type"`
	Entry        []txEntry `json:"entry"`
}

type txEntry struct {
	FullURL  string          `json:"fullUrl"`
	Resource json.RawMessage `json:"resource"`
	Request  *txRequest      `json:"request"`
	Response json.RawMessage `json:"response"`
}

type txRequest struct {
	Method          string `json:"method"`
	URL             string `json:"url"`
	IfNoneMatch     string `json:"ifNoneMatch"`
	IfModifiedSince string `json:"ifModifiedSince"`
	IfMatch         string `json:"ifMatch"`
	IfNoneExist     string `json:"ifNoneExist"`
}

// decodeTxBundle reads a posted Bundle. Each entry's resource is kept as
// bytes, unread: fhir/jsonvalue splits the body in one pass where
// encoding/json, scanning every resource twice to copy it into a
// json.RawMessage, took a tenth of a transaction's CPU (issue 4).
// Property names are case-sensitive (json.html), unlike encoding/json's.
func decodeTxBundle(body []byte) (txBundle, error) {
	var b txBundle
	var entries []byte
	err := jsonvalue.Members(body, func(k string, v []byte) (err error) {
		switch k {
		case "resourceType":
			b.ResourceType, err = jsonvalue.String(v)
		case "type":
			b.Type, err = jsonvalue.String(v)
		case "entry":
			entries = v
		}
		return err
	})
	if err != nil || entries == nil || string(entries) == "null" {
		return b, err
	}
	err = jsonvalue.Elements(entries, func(i int, v []byte) error {
		var e txEntry
		err := jsonvalue.Members(v, func(k string, v []byte) (err error) {
			switch k {
			case "fullUrl":
				e.FullURL, err = jsonvalue.String(v)
			case "resource":
				e.Resource = v
			case "response":
				e.Response = v
			case "request":
				// A few short strings: encoding/json is cheap enough.
				err = json.Unmarshal(v, &e.Request)
			}
			return err
		})
		if err != nil {
			return fmt.Errorf("Bundle.entry[%d]: %w", i, err)
		}
		b.Entry = append(b.Entry, e)
		return nil
	})
	return b, err
}

// step is one entry on its way through the steps.
type step struct {
	i      int
	e      txEntry
	method string
	typ    string
	id     string          // from the URL, or decided by identify
	query  string          // conditional criteria (writes) or query (reads)
	url    string          // the entry's URL relative to the base (reads)
	create bool            // a write that creates under a new server id
	found  *store.Resource // conditional create matched this: nothing written
	// results
	change *store.Change
	status int
	err    error // batch: the entry failed
	reply  txReply
}

// txReply is a response entry.
type txReply struct {
	FullURL  string          `json:"fullUrl,omitempty"`
	Resource json.RawMessage `json:"resource,omitempty"`
	Response txResponse      `json:"response"`
}

type txResponse struct {
	Status       string          `json:"status"`
	Location     string          `json:"location,omitempty"`
	Etag         string          `json:"etag,omitempty"`
	LastModified string          `json:"lastModified,omitempty"`
	Outcome      json.RawMessage `json:"outcome,omitempty"`
}

// rank is the processing order of http.html#trules.
func rank(method string) int {
	switch method {
	case http.MethodDelete:
		return 0
	case http.MethodPost:
		return 1
	case http.MethodPut, http.MethodPatch:
		return 2
	}
	return 3
}

// rank is the processing order of s: http.html#trules, except that a
// history Bundle's writes keep their order (oldest first), reads after.
func (t *tx) rank(s *step) int {
	r := rank(s.method)
	if t.history && r < 3 {
		return 0
	}
	return r
}

// tx is one batch or transaction being processed.
type tx struct {
	a       *API
	r       *http.Request
	ctx     context.Context
	base    string
	atomic  bool // transaction
	history bool // a history Bundle, replayed as a batch
	steps   []*step
	// ids maps each entry's fullUrl to the identity it gets (Type/id).
	ids map[string]string
	// condRefs caches conditional references: each is resolved once.
	condRefs map[string]string
	// targets maps the Type/id of every write to its entry.
	targets map[string]int
}

// bundle is POST [base]: a batch or a transaction.
func (a *API) bundle(w http.ResponseWriter, r *http.Request) error {
	body, err := readBody(r)
	if err != nil {
		return err
	}
	b, err := decodeTxBundle(body)
	if err != nil {
		return outcome.New(http.StatusBadRequest, outcome.CodeStructure, "the body is not a JSON Bundle: "+err.Error())
	}
	if b.ResourceType != "Bundle" {
		return outcome.Newf(http.StatusBadRequest, outcome.CodeInvalid,
			"POST to the base takes a Bundle of type batch or transaction, not %q", b.ResourceType)
	}
	t := &tx{a: a, r: r, ctx: r.Context(), base: a.base(r), ids: map[string]string{}, condRefs: map[string]string{}, targets: map[string]int{}}
	respType := "batch-response"
	switch b.Type {
	case "transaction":
		t.atomic, respType = true, "transaction-response"
		setInteraction(r, "transaction")
	case "batch":
	case "history":
		// http.html#transaction: servers SHOULD accept a history Bundle; it
		// is replayed as a batch, oldest version first (a resource may
		// occur several times), keeping the ids it names.
		t.history = true
	default:
		return outcome.New(http.StatusBadRequest, outcome.CodeValue,
			fmt.Sprintf("Bundle.type is %q; POST to the base takes batch, transaction or history", b.Type), "Bundle.type")
	}
	if err := t.check(b.Entry); err != nil {
		return err
	}
	order := slices.Clone(t.steps)
	if t.history {
		slices.Reverse(order) // a history Bundle lists the newest first
	}
	slices.SortStableFunc(order, func(x, y *step) int { return t.rank(x) - t.rank(y) })
	if t.atomic {
		for _, s := range order {
			if rank(s.method) < 3 {
				if err := t.fail(s, t.identify(s)); err != nil {
					return err
				}
			}
		}
		for _, s := range order {
			if rank(s.method) < 3 {
				if err := t.fail(s, t.plan(s)); err != nil {
					return err
				}
			}
		}
		for _, s := range order {
			if rank(s.method) == 3 {
				if err := t.preflight(s); err != nil {
					return err
				}
			}
		}
		if err := t.commit(); err != nil {
			return err
		}
	} else {
		// Batch entries are independent: each is identified, planned and
		// committed before the next, so a later entry sees an earlier one
		// (two conditional creates with the same criteria create one).
		for _, s := range order {
			if rank(s.method) < 3 && s.err == nil {
				t.fail(s, t.identify(s))
				if s.err == nil {
					t.fail(s, t.plan(s))
				}
				if s.err == nil && s.change != nil {
					t.fail(s, t.a.store.Commit(t.ctx, *s.change))
				}
			}
		}
	}
	for _, s := range order {
		if rank(s.method) == 3 && s.err == nil {
			t.read(s)
		}
	}
	return t.respond(w, respType)
}

// fail records err for s: in a transaction it ends everything (the error
// returned names the entry); in a batch it becomes the entry's response.
func (t *tx) fail(s *step, err error) error {
	if err == nil {
		return nil
	}
	err = entryError(s.i, err)
	if t.atomic {
		return err
	}
	s.err = err
	return nil
}

// entryError names entry i in every issue of err (expression Bundle.entry[i]).
func entryError(i int, err error) *outcome.Error {
	oe := asOutcome(err)
	where := fmt.Sprintf("Bundle.entry[%d]", i)
	c := *oe
	c.Header = nil // the entry's ETag or Location would mislead on the bundle's answer
	c.Issues = make([]outcome.Issue, len(oe.Issues))
	for k, is := range oe.Issues {
		is.Expression = append([]string{where}, is.Expression...)
		is.Diagnostics = where + ": " + is.Diagnostics
		c.Issues[k] = is
	}
	return &c
}

// check rejects the bundle as a whole for what makes it unprocessable
// (bundle.html bdl-3, bdl-4, bdl-7; http.html#transaction), and parses
// every entry's request.
func (t *tx) check(entries []txEntry) error {
	fullURLs := map[string]int{}
	for i, e := range entries {
		where := fmt.Sprintf("Bundle.entry[%d]", i)
		bad := func(code, msg string, expr string) error {
			return outcome.New(http.StatusBadRequest, code, where+": "+msg, expr)
		}
		if e.Request == nil || e.Request.Method == "" || e.Request.URL == "" {
			return bad(outcome.CodeRequired, "every entry of a batch or transaction needs request.method and request.url (bdl-3)", where+".request")
		}
		if len(e.Response) > 0 && !t.history {
			return bad(outcome.CodeInvalid, "a request bundle's entries carry no response (bdl-4)", where+".response")
		}
		if e.FullURL != "" && !t.history { // bdl-7 exempts history Bundles
			if j, dup := fullURLs[e.FullURL]; dup {
				return bad(outcome.CodeDuplicate, fmt.Sprintf("fullUrl %s is also the fullUrl of Bundle.entry[%d] (bdl-7)", e.FullURL, j), where+".fullUrl")
			}
			fullURLs[e.FullURL] = i
		}
		s := &step{i: i, e: e, method: e.Request.Method}
		t.steps = append(t.steps, s)
		if err := t.fail(s, t.parseRequest(s)); err != nil {
			return err
		}
	}
	return nil
}

// parseRequest reads request.method and request.url of s.
func (t *tx) parseRequest(s *step) error {
	req := s.e.Request
	switch s.method {
	case http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete:
	default:
		return outcome.New(http.StatusBadRequest, outcome.CodeValue, "request.method must be GET, HEAD, POST, PUT, PATCH or DELETE", "request.method")
	}
	u := req.URL
	if rest, ok := strings.CutPrefix(u, t.base+"/"); ok {
		u = rest // an absolute URL on this server
	} else if strings.HasPrefix(u, "http://") || strings.HasPrefix(u, "https://") {
		return outcome.New(http.StatusBadRequest, outcome.CodeNotSupported, "request.url is on another server", "request.url")
	}
	u = strings.TrimPrefix(u, "/")
	s.url = u
	path, query, _ := strings.Cut(u, "?")
	s.query = query
	segs := strings.Split(path, "/")
	if rank(s.method) == 3 {
		if path == "" || strings.HasPrefix(path, "_") || strings.HasPrefix(path, "$") {
			return nil // system-level reads are routed as they are
		}
		return checkType(segs[0])
	}
	if len(s.e.Resource) > 0 {
		if err := notNested(s.e.Resource); err != nil {
			return err
		}
	}
	if path == "" {
		return outcome.New(http.StatusBadRequest, outcome.CodeNotSupported,
			"a batch or transaction cannot be nested in an entry of another", "request.url")
	}
	if err := checkType(segs[0]); err != nil {
		return err
	}
	s.typ = segs[0]
	switch {
	case len(segs) == 1 && s.method == http.MethodPost:
		if query != "" {
			return outcome.New(http.StatusBadRequest, outcome.CodeValue, "a POST entry's url is the type alone (conditions go in request.ifNoneExist)", "request.url")
		}
	case len(segs) == 1 && query != "": // conditional PUT, PATCH, DELETE
	case len(segs) == 2 && s.method != http.MethodPost && query == "":
		if !resource.ValidID(segs[1]) {
			return outcome.New(http.StatusBadRequest, outcome.CodeValue, "invalid id in request.url", "request.url")
		}
		s.id = segs[1]
	default:
		return outcome.Newf(http.StatusBadRequest, outcome.CodeValue, "request.url %q is not a valid target for %s", req.URL, s.method)
	}
	if (s.method == http.MethodPost || s.method == http.MethodPut || s.method == http.MethodPatch) && len(s.e.Resource) == 0 {
		return outcome.New(http.StatusBadRequest, outcome.CodeRequired, s.method+" entries need a resource (bdl-3)", "resource")
	}
	if t.history && s.method == http.MethodPost {
		// http.html#transaction: a history POST keeps resource.id, so that
		// references to it stay true: it is written as an update-as-create.
		var head struct {
			ID string `json:"id"`
		}
		json.Unmarshal(s.e.Resource, &head)
		if resource.ValidID(head.ID) {
			s.method, s.id = http.MethodPut, head.ID
		}
	}
	return nil
}

// notNested refuses a batch or transaction Bundle as an entry's resource:
// processing it is not what storing it would mean.
func notNested(res json.RawMessage) error {
	var rt, typ string
	err := jsonvalue.Members(res, func(k string, v []byte) (err error) {
		switch k {
		case "resourceType":
			rt, err = jsonvalue.String(v)
		case "type":
			typ, err = jsonvalue.String(v)
		}
		return err
	})
	if err == nil && rt == "Bundle" && (typ == "batch" || typ == "transaction") {
		return outcome.New(http.StatusBadRequest, outcome.CodeNotSupported,
			"a batch or transaction cannot be nested in an entry of another", "resource")
	}
	return nil
}

// identify decides the target of a write (http.html#trules) and maps the
// entry's fullUrl to it.
func (t *tx) identify(s *step) error {
	switch {
	case s.method == http.MethodPost && s.e.Request.IfNoneExist != "":
		found, err := t.a.matches(t.ctx, t.base, s.typ, s.e.Request.IfNoneExist)
		if err != nil {
			return err
		}
		switch len(found) {
		case 0:
			s.id, s.create = newID(), true
		case 1:
			s.id, s.found = found[0].ID, &found[0]
		default:
			return severalMatches(len(found), "ifNoneExist")
		}
	case s.method == http.MethodPost:
		// http.html#trules: the fullUrl is not an id; the server assigns one.
		s.id, s.create = newID(), true
	case s.id == "" && s.method == http.MethodPut:
		var head struct {
			ID string `json:"id"`
		}
		json.Unmarshal(s.e.Resource, &head)
		id, _, err := t.a.updateTarget(t.ctx, t.base, s.typ, s.query, head.ID)
		if err != nil {
			return err
		}
		s.id = id
		if id == "" {
			s.id, s.create = newID(), true
		}
	case s.id == "":
		found, err := t.a.matches(t.ctx, t.base, s.typ, s.query)
		if err != nil {
			return err
		}
		switch {
		case len(found) > 1:
			return severalMatches(len(found), "conditional "+strings.ToLower(s.method))
		case len(found) == 1:
			s.id = found[0].ID
		case s.method == http.MethodPatch:
			return outcome.New(http.StatusNotFound, outcome.CodeNotFound, "the conditional patch criteria match no resource")
		default:
			return nil // conditional delete of nothing
		}
	}
	target := s.typ + "/" + s.id
	// http.html#trules: a resource may appear only once among the writes
	// of a transaction (batch entries are independent).
	if j, dup := t.targets[target]; dup && t.atomic {
		return outcome.New(http.StatusBadRequest, outcome.CodeDuplicate,
			fmt.Sprintf("%s is also the target of Bundle.entry[%d]; a resource may appear only once in a transaction", target, j),
			fmt.Sprintf("Bundle.entry[%d]", j))
	}
	t.targets[target] = s.i
	if s.e.FullURL != "" {
		t.ids[s.e.FullURL] = target
	}
	return nil
}

// plan computes the change a write makes.
func (t *tx) plan(s *step) error {
	ctx := t.ctx
	ifMatch, err := ifMatchVersion(s.e.Request.IfMatch)
	if err != nil {
		return err
	}
	switch s.method {
	case http.MethodDelete:
		if s.id == "" {
			s.status = http.StatusNoContent
			return nil
		}
		cur, _ := t.a.store.Read(ctx, s.typ, s.id) // missing: nil body
		if err := t.a.permit(ctx, OpDelete, s.typ, cur.Body); err != nil {
			return err
		}
		ch, ok, err := t.a.deleteChange(ctx, s.typ, s.id, ifMatch)
		if err != nil {
			return err
		}
		s.status = http.StatusNoContent
		if ok {
			s.change = &ch
		}
		return nil
	case http.MethodPost:
		if s.found != nil {
			if err := t.a.permit(ctx, OpRead, s.typ, s.found.Body); err != nil {
				return err
			}
			s.status = http.StatusOK // http.html#ccreate: one match, nothing created
			return nil
		}
	}
	var parsed *resource.Resource
	if s.method == http.MethodPatch {
		doc, err := patchFromEntry(s.e.Resource)
		if err != nil {
			return err
		}
		// The change replaces exactly the version that was patched.
		parsed, ifMatch, err = t.a.patched(ctx, s.typ, s.id, ifMatch, doc)
		if err != nil {
			return err
		}
	} else {
		parsed, err = t.parse(s)
		if err != nil {
			return err
		}
	}
	op := OpUpdate
	if s.create {
		op = OpCreate
	}
	// The type first; the resource is judged as it will be stored, with
	// its urn:uuid and conditional references resolved (judging the entry
	// as sent would refuse a reference to urn:uuid:<the patient's own
	// entry> and could not see where a conditional reference points).
	// updateChange judges both ends of an update (and of a patch).
	if err := t.a.permit(ctx, op, s.typ, nil); err != nil {
		return err
	}
	base := t.a.indexBase(t.r)
	if s.create {
		ch, err := t.a.stamp(base, parsed, s.id, 1, store.MethodPost)
		if err != nil {
			return err
		}
		if err := t.a.permit(ctx, OpCreate, ch.Type, ch.Body); err != nil {
			return err
		}
		s.change, s.status = &ch, http.StatusCreated
		return nil
	}
	if s.method == http.MethodPut {
		if err := checkBodyID(parsed, s.id, s.query != ""); err != nil {
			return err
		}
	}
	ch, status, err := t.a.updateChange(ctx, base, parsed, s.id, ifMatch)
	if err != nil {
		return err
	}
	s.change, s.status = &ch, status
	return nil
}

// parse rewrites the references of a POST or PUT entry's resource and
// validates it.
func (t *tx) parse(s *step) (*resource.Resource, error) {
	body, v, err := refs.RewriteValue(s.e.Resource, func(v string, kind refs.Kind) (string, error) {
		return t.resolve(s, v, kind)
	})
	if err != nil {
		return nil, outcome.As(err)
	}
	parsed, err := resource.ParseValue(body, v)
	if err != nil {
		return nil, err
	}
	if parsed.Type != s.typ {
		return nil, outcome.New(http.StatusBadRequest, outcome.CodeInvalid,
			fmt.Sprintf("resourceType %q does not match the type in request.url (%s)", parsed.Type, s.typ), "resourceType")
	}
	return parsed, nil
}

// resolve rewrites one value found in the resource of s (http.html#trules).
func (t *tx) resolve(s *step, v string, kind refs.Kind) (string, error) {
	if target, ok := t.ids[v]; ok {
		if kind == refs.URI && !strings.HasPrefix(v, "urn:") {
			// A string equal to an http fullUrl outside a Reference is most
			// likely a canonical (a ValueSet's url named by a binding),
			// which http.html#trules says is not rewritten; urn:uuid and
			// urn:oid values are uri/oid/uuid elements, which are.
			return v, nil
		}
		if !t.atomic && kind == refs.Reference {
			// http.html#transaction: batch entries may not depend on each other.
			return "", outcome.Newf(http.StatusBadRequest, outcome.CodeInvalid,
				"the reference %s names another entry of the batch; only a transaction may do that", v)
		}
		if t.atomic {
			return target, nil
		}
		return v, nil
	}
	if kind != refs.Reference {
		return v, nil
	}
	switch {
	case strings.HasPrefix(v, "urn:uuid:") || strings.HasPrefix(v, "urn:oid:"):
		return "", outcome.Newf(http.StatusBadRequest, outcome.CodeNotFound,
			"the reference %s names no entry of the bundle (no entry has it as fullUrl)", v)
	case condRefPattern.MatchString(v):
		return t.conditionalRef(v)
	}
	if abs, ok := refs.Absolute(s.e.FullURL, v); ok && t.atomic {
		// bundle.html#references: relative to the entry's fullUrl.
		if target, ok := t.ids[abs]; ok {
			return target, nil
		}
	}
	return v, nil
}

// condRefPattern matches a conditional reference: Type?criteria.
var condRefPattern = regexp.MustCompile(`^[A-Z][A-Za-z]+\?.`)

// conditionalRef resolves Type?criteria by search, once per bundle
// (http.html#trules): exactly one match, or the entry fails.
func (t *tx) conditionalRef(ref string) (string, error) {
	if target, ok := t.condRefs[ref]; ok {
		return target, nil
	}
	typ, criteria, _ := strings.Cut(ref, "?")
	if err := checkType(typ); err != nil {
		return "", err
	}
	found, err := t.a.matches(t.ctx, t.base, typ, criteria)
	if err != nil {
		return "", err
	}
	switch len(found) {
	case 0:
		return "", outcome.Newf(http.StatusBadRequest, outcome.CodeNotFound,
			"the conditional reference %s matches no resource", ref)
	case 1:
		t.condRefs[ref] = typ + "/" + found[0].ID
		return t.condRefs[ref], nil
	}
	return "", outcome.Newf(http.StatusPreconditionFailed, outcome.CodeMultiple,
		"the conditional reference %s matches several resources", ref)
}

// commit writes a transaction's planned changes in one store.Commit: the
// store applies all or none.
func (t *tx) commit() error {
	var changes []store.Change
	var owners []*step
	for _, s := range t.steps {
		if s.change != nil {
			changes = append(changes, *s.change)
			owners = append(owners, s)
		}
	}
	err := t.a.store.Commit(t.ctx, changes...)
	var ce *store.ConflictError
	if errors.As(err, &ce) && ce.Index < len(owners) {
		// Another client wrote the same resource since identify read it.
		return entryError(owners[ce.Index].i, err)
	}
	return err
}

// read runs a GET or HEAD entry through the router, as its own request
// with the client's credentials and the entry's conditional headers.
func (t *tx) read(s *step) {
	u := &url.URL{Path: "/" + strings.SplitN(s.url, "?", 2)[0], RawQuery: s.query}
	// A fresh request-info keeps the inner handler from relabelling the
	// outer request in logs and metrics.
	ctx := context.WithValue(t.ctx, infoKey{}, &reqInfo{id: requestID(t.r)})
	req, err := http.NewRequestWithContext(ctx, s.method, u.String(), nil)
	if err != nil {
		s.err = entryError(s.i, outcome.New(http.StatusBadRequest, outcome.CodeValue, "invalid request.url"))
		return
	}
	req.Host, req.TLS = t.r.Host, t.r.TLS
	for _, k := range []string{"Authorization", "Accept"} {
		if v := t.r.Header.Get(k); v != "" {
			req.Header.Set(k, v)
		}
	}
	if v := s.e.Request.IfNoneMatch; v != "" {
		req.Header.Set("If-None-Match", v)
	}
	if v := s.e.Request.IfModifiedSince; v != "" {
		if ts, err := time.Parse(time.RFC3339Nano, v); err == nil {
			v = httpDate(ts)
		}
		req.Header.Set("If-Modified-Since", v)
	}
	rec := &recorder{header: http.Header{}}
	t.a.router.ServeHTTP(rec, req)
	s.status = rec.status
	if rec.status >= 400 {
		s.reply.Response.Outcome = compacted(rec.body.Bytes())
		return
	}
	if s.method == http.MethodGet && rec.body.Len() > 0 {
		s.reply.Resource = compacted(rec.body.Bytes())
	}
	s.reply.Response.Etag = rec.header.Get("ETag")
	s.reply.Response.Location = rec.header.Get("Location")
	if lm, err := http.ParseTime(rec.header.Get("Last-Modified")); err == nil {
		s.reply.Response.LastModified = lm.UTC().Format(time.RFC3339)
	}
}

// preflight runs a transaction's GET or HEAD entry before the commit, so
// that an entry the server refuses (403; 404 for a resource the access
// may not see, the same answer as for one that does not exist) fails the
// whole transaction with nothing stored: each inner request is authorized
// on its own (checklist A-BT-16) and a transaction is all or nothing
// (http.html#transaction). An entry reading a resource that the
// transaction itself writes is left to the read after the commit: its
// answer depends on those writes, which plan has checked. Every entry is
// read again after the commit, so that it sees the transaction's writes.
func (t *tx) preflight(s *step) error {
	path, _, _ := strings.Cut(s.url, "?")
	if segs := strings.Split(path, "/"); len(segs) >= 2 {
		if _, written := t.targets[segs[0]+"/"+segs[1]]; written {
			return nil
		}
	}
	probe := &step{i: s.i, e: s.e, method: s.method, url: s.url, query: s.query}
	t.read(probe)
	if probe.err != nil {
		return probe.err
	}
	if probe.status < 400 {
		return nil
	}
	oe := &outcome.Error{Status: probe.status}
	var oo struct{ Issue []outcome.Issue }
	if json.Unmarshal(probe.reply.Response.Outcome, &oo) == nil {
		oe.Issues = oo.Issue
	}
	if len(oe.Issues) == 0 {
		oe.Issues = []outcome.Issue{{Severity: outcome.SevError, Code: outcome.CodeProcessing, Diagnostics: http.StatusText(probe.status)}}
	}
	return entryError(s.i, oe)
}

// respond writes the batch-response or transaction-response: one entry per
// request entry, in the request's order (http.html#transaction-response).
func (t *tx) respond(w http.ResponseWriter, typ string) error {
	prefer := preferReturn(t.r)
	b := txResponseBundle{"Bundle", newID(), bundleMeta{LastUpdated: t.a.now().Format(time.RFC3339Nano)}, typ, make([]txReply, len(t.steps))}
	for k, s := range t.steps {
		rp := s.reply
		switch {
		case s.err != nil:
			oe := asOutcome(s.err)
			rp = txReply{Response: txResponse{Status: statusLine(oe.Status), Outcome: outcome.Resource(oe.Issues)}}
		case s.change != nil || s.found != nil:
			res := s.found
			if s.change != nil {
				c := changed(*s.change)
				res = &c
			}
			rp.FullURL = t.base + "/" + res.Type + "/" + res.ID
			rp.Response.Etag = etag(res.Version)
			rp.Response.LastModified = res.LastUpdated.UTC().Format(time.RFC3339Nano)
			touch(t.ctx, res.Body)
			if !res.Deleted() {
				rp.Response.Location = res.Type + "/" + res.ID + "/_history/" + strconv.FormatInt(res.Version, 10)
				switch prefer {
				case "minimal":
				case "OperationOutcome":
					rp.Response.Outcome = outcome.Info(res.Type + "/" + res.ID + " version " + strconv.FormatInt(res.Version, 10))
				default:
					rp.Resource = res.Body
				}
			}
		}
		if rp.Response.Status == "" {
			rp.Response.Status = statusLine(s.status)
		}
		if prefer == "minimal" {
			rp.Resource = nil
		}
		b.Entry[k] = rp
	}
	writeJSON(w, t.r, http.StatusOK, b.appendJSON(nil))
	return nil
}

// txResponseBundle is a batch-response or transaction-response.
type txResponseBundle struct {
	ResourceType string     `json:"resourceType"`
	ID           string     `json:"id"`
	Meta         bundleMeta `json:"meta"`
	Type         string     `json:"type"`
	Entry        []txReply  `json:"entry,omitempty"`
}

// appendJSON appends the response Bundle's JSON to dst: what
// encoding/json would write (HTML not escaped), with each resource's bytes
// copied as they are, as search Bundles are written (bundle.appendJSON).
// encoding/json validated and compacted every stored resource a second
// time; the resources here are stored bytes (compact canonical JSON),
// outcomes from outcome.Resource (compact) and GET entries' bodies, which
// read compacts. TestTxResponseJSON keeps the two equal.
func (b *txResponseBundle) appendJSON(dst []byte) []byte {
	dst = appendBundleHead(dst, b.ResourceType, b.ID, b.Meta.LastUpdated, b.Type)
	if len(b.Entry) > 0 {
		dst = append(dst, `,"entry":[`...)
		for i, e := range b.Entry {
			if i > 0 {
				dst = append(dst, ',')
			}
			dst = append(dst, '{')
			if e.FullURL != "" {
				dst = append(dst, `"fullUrl":`...)
				dst = appendString(dst, e.FullURL)
				dst = append(dst, ',')
			}
			if len(e.Resource) > 0 {
				dst = append(dst, `"resource":`...)
				dst = append(dst, e.Resource...)
				dst = append(dst, ',')
			}
			x := e.Response
			dst = append(dst, `"response":{"status":`...)
			dst = appendString(dst, x.Status)
			for _, f := range [...]struct{ name, v string }{{"location", x.Location}, {"etag", x.Etag}, {"lastModified", x.LastModified}} {
				if f.v != "" {
					dst = append(dst, `,"`...)
					dst = append(dst, f.name...)
					dst = append(dst, `":`...)
					dst = appendString(dst, f.v)
				}
			}
			if len(x.Outcome) > 0 {
				dst = append(dst, `,"outcome":`...)
				dst = append(dst, x.Outcome...)
			}
			dst = append(dst, "}}"...)
		}
		dst = append(dst, ']')
	}
	return append(dst, '}')
}

// compacted is b as encoding/json embeds a json.RawMessage: compact, HTML
// not escaped (a GET entry's body is indented under _pretty).
func compacted(b []byte) []byte {
	var buf bytes.Buffer
	if json.Compact(&buf, b) != nil {
		return b
	}
	return buf.Bytes()
}

func statusLine(code int) string {
	return strconv.Itoa(code) + " " + http.StatusText(code)
}

// recorder is the ResponseWriter of a GET entry run through the router.
type recorder struct {
	header http.Header
	status int
	body   bytes.Buffer
}

func (r *recorder) Header() http.Header { return r.header }
func (r *recorder) WriteHeader(code int) {
	if r.status == 0 {
		r.status = code
	}
}
func (r *recorder) Write(b []byte) (int, error) {
	if r.status == 0 {
		r.status = http.StatusOK
	}
	return r.body.Write(b)
}
