package rest

import (
	"context"
	"errors"
	"net/http"
	"strings"

	"github.com/gorilla/mux"

	"github.com/kiln-fhir/kiln/fhir/outcome"
	"github.com/kiln-fhir/kiln/fhir/search"
	"github.com/kiln-fhir/kiln/store"
)

// SearchParams is a search parameter registry that changes while the
// server runs: custom SearchParameter resources stored through the API
// (fhir/reindex.Registry). Without one (Config.SearchParams nil) the
// registry is Config.Registry for good, and SearchParameter resources are
// stored like any other.
type SearchParams interface {
	// Query is the registry searches are parsed with and the
	// CapabilityStatement lists: only the parameters that are searchable.
	Query() *search.Registry
	// Index is the registry index entries are extracted with: also the
	// custom parameters whose reindex is still running, so that nothing
	// written meanwhile lacks their entries.
	Index() *search.Registry
	// Check refuses a SearchParameter (its stamped body) that could not
	// join the registry, with an *outcome.Error naming the element; it is
	// called before every create or update of one, so nothing is stored.
	Check(ctx context.Context, id string, body []byte) error
	// Changed tells that SearchParameter/id was created, updated or
	// deleted (committed): its reindex starts.
	Changed(ctx context.Context, id string)
	// Indexing reports whether code is a custom parameter of one of types
	// (nil: any) whose reindex is still running, and its SearchParameter's
	// id: a search by it is told so.
	Indexing(types []string, code string) (string, bool)
	// Status is the Parameters resource of $reindex-status for
	// SearchParameter/id (store.ErrNotFound, store.ErrGone as a read).
	Status(ctx context.Context, id string) ([]byte, error)
}

// queryRegistry is the registry searches are parsed with.
func (a *API) queryRegistry() *search.Registry {
	if a.cfg.SearchParams != nil {
		return a.cfg.SearchParams.Query()
	}
	return a.cfg.Registry
}

// indexRegistry is the registry index entries are extracted with.
func (a *API) indexRegistry() *search.Registry {
	if a.cfg.SearchParams != nil {
		return a.cfg.SearchParams.Index()
	}
	return a.cfg.Registry
}

// checkSearchParameter refuses a SearchParameter the registry cannot take
// before it is stored (stamp).
func (a *API) checkSearchParameter(ctx context.Context, typ, id string, body []byte) error {
	if typ != "SearchParameter" || a.cfg.SearchParams == nil {
		return nil
	}
	return a.cfg.SearchParams.Check(ctx, id, body)
}

// capsCache holds the CapabilityStatement rendered for one query registry:
// it is rendered again when a custom parameter becomes searchable or goes.
type capsCache struct {
	reg  *search.Registry
	caps capabilities
}

// capabilities is the CapabilityStatement for the registry of the moment.
func (a *API) capabilities() capabilities {
	reg := a.queryRegistry()
	if c := a.capsNow.Load(); c != nil && c.reg == reg {
		return c.caps
	}
	c := &capsCache{reg: reg, caps: newCapabilities(a.cfg, a.cfg.Now(), reg)}
	a.capsNow.Store(c)
	return c.caps
}

// spNotifier is the API's store when custom SearchParameters are on: a
// committed write of a SearchParameter (by any interaction, transactions
// included) is reported to SearchParams.Changed.
type spNotifier struct {
	Store
	sp SearchParams
}

func (s spNotifier) Commit(ctx context.Context, changes ...store.Change) error {
	if err := s.Store.Commit(ctx, changes...); err != nil {
		return err
	}
	for _, ch := range changes {
		if ch.Type == "SearchParameter" {
			s.sp.Changed(context.WithoutCancel(ctx), ch.ID)
		}
	}
	return nil
}

// noteIndexing adds to what a search could not apply that a parameter is a
// custom one still being indexed: the client learns it is coming, not
// that it is misspelt. err is Parse's (strict), report its report
// (lenient).
func (a *API) noteIndexing(types []string, report *search.Report, err error) {
	if a.cfg.SearchParams == nil {
		return
	}
	note := func(param string) string {
		code, _, _ := strings.Cut(param, ":")
		code, _, _ = strings.Cut(code, ".")
		if id, ok := a.cfg.SearchParams.Indexing(types, code); ok {
			return "; " + code + " is a custom search parameter still being indexed: it becomes searchable when its reindex is done (GET SearchParameter/" + id + "/$reindex-status)"
		}
		return ""
	}
	var e *outcome.Error
	if errors.As(err, &e) {
		for i, is := range e.Issues {
			if len(is.Expression) > 0 {
				e.Issues[i].Diagnostics += note(is.Expression[0])
			}
		}
	}
	if report != nil {
		for i, ig := range report.Ignored {
			report.Ignored[i].Reason += note(ig.Param)
		}
	}
}

// reindexStatus is GET [base]/SearchParameter/[id]/$reindex-status: the
// state of a custom parameter and the progress of its reindex, as a
// Parameters resource (fhir/reindex.Registry.Status).
func (a *API) reindexStatus(w http.ResponseWriter, r *http.Request) error {
	if a.cfg.SearchParams == nil {
		return outcome.New(http.StatusNotImplemented, outcome.CodeNotSupported, "custom search parameters are not enabled on this server")
	}
	id := mux.Vars(r)["id"]
	// As a read: a SearchParameter the access may not see, deleted or
	// not, is the same 404 as one that does not exist.
	sp, err := a.store.Read(r.Context(), "SearchParameter", id)
	if err := a.permitVersion(r.Context(), OpRead, sp, err); err != nil {
		return err
	}
	if err != nil {
		return readError(err, sp)
	}
	body, err := a.cfg.SearchParams.Status(r.Context(), id)
	if err != nil {
		return err
	}
	writeJSON(w, r, http.StatusOK, body)
	return nil
}
