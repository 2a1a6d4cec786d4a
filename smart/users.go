package smart

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"time"

	"golang.org/x/crypto/argon2"

	"github.com/kiln-fhir/kiln/store"
)

// User is a local account.
type User struct {
	Username string `json:"username"`
	// Subject is the stable, opaque "sub" of id_tokens: usernames can be
	// renamed, and "sub" must not change (OIDC Core §2).
	Subject string `json:"sub"`
	// FHIRUser is the person resource the account stands for:
	// "Patient/123", "Practitioner/9", "RelatedPerson/…" or "Person/…".
	FHIRUser string    `json:"fhirUser,omitempty"`
	Hash     string    `json:"hash"` // argon2id, PHC string format
	Created  time.Time `json:"created"`
}

// Patient is the patient id of a Patient user, "" for anyone else.
func (u *User) Patient() string {
	if id, ok := strings.CutPrefix(u.FHIRUser, "Patient/"); ok {
		return id
	}
	return ""
}

// argon2id parameters: RFC 9106 §4's second recommended option (64 MiB,
// 3 passes), with 2 lanes for the machines Kiln runs on.
// They are variables only so that tests, which sign in dozens of times,
// can run cheaper; checkPassword reads the cost from each stored hash.
var (
	argonTime    uint32 = 3
	argonMemory  uint32 = 64 * 1024
	argonThreads uint8  = 2
)

const argonKeyLen = 32

func hashPassword(pw string) string {
	salt := make([]byte, 16)
	rand.Read(salt)
	key := argon2.IDKey([]byte(pw), salt, argonTime, argonMemory, argonThreads, argonKeyLen)
	return fmt.Sprintf("$argon2id$v=%d$m=%d,t=%d,p=%d$%s$%s", argon2.Version, argonMemory, argonTime, argonThreads,
		base64.RawStdEncoding.EncodeToString(salt), base64.RawStdEncoding.EncodeToString(key))
}

func checkPassword(encoded, pw string) bool {
	var v int
	var m uint32
	var t uint32
	var p uint8
	parts := strings.Split(encoded, "$")
	if len(parts) != 6 || parts[1] != "argon2id" {
		return false
	}
	if _, err := fmt.Sscanf(parts[2], "v=%d", &v); err != nil || v != argon2.Version {
		return false
	}
	if _, err := fmt.Sscanf(parts[3], "m=%d,t=%d,p=%d", &m, &t, &p); err != nil {
		return false
	}
	salt, err1 := base64.RawStdEncoding.DecodeString(parts[4])
	want, err2 := base64.RawStdEncoding.DecodeString(parts[5])
	if err1 != nil || err2 != nil || len(want) == 0 {
		return false
	}
	got := argon2.IDKey([]byte(pw), salt, t, m, p, uint32(len(want)))
	return subtle.ConstantTimeCompare(got, want) == 1
}

// dummyHash is checked when the username is unknown, so that a login
// takes as long whether or not the account exists.
var dummyHash = hashPassword("kiln-no-such-user")

var (
	fhirUserRE = regexp.MustCompile(`^(Patient|Practitioner|RelatedPerson|Person)/[A-Za-z0-9\-.]{1,64}$`)
	fhirIDRE   = regexp.MustCompile(`^[A-Za-z0-9\-.]{1,64}$`)
)

// AddUser creates a local account. fhirUser is a relative reference to a
// Patient, Practitioner, RelatedPerson or Person (the types Inferno
// accepts for the fhirUser claim), or empty for an account that is no
// FHIR person.
func AddUser(ctx context.Context, rs Records, username, password, fhirUser string) (User, error) {
	if username == "" || strings.ContainsAny(username, " \t\r\n") || len(username) > 128 {
		return User{}, errors.New("username must be 1 to 128 characters without spaces")
	}
	// No password: an account that signs in only through the upstream
	// OpenID Connect provider (LinkUser).
	if password != "" && len(password) < 8 {
		return User{}, errors.New("password must have at least 8 characters")
	}
	if fhirUser != "" && !fhirUserRE.MatchString(fhirUser) {
		return User{}, fmt.Errorf("fhirUser %q: want Patient/ID, Practitioner/ID, RelatedPerson/ID or Person/ID", fhirUser)
	}
	u := User{Username: username, Subject: randomToken(16), FHIRUser: fhirUser, Created: time.Now().UTC()}
	if password != "" {
		u.Hash = hashPassword(password)
	}
	b, err := json.Marshal(u)
	if err != nil {
		return User{}, err
	}
	if err := rs.InsertRecord(ctx, store.Record{Kind: kindUser, Key: username, Value: b}); err != nil {
		if errors.Is(err, store.ErrVersionConflict) {
			return User{}, fmt.Errorf("user %q already exists", username)
		}
		return User{}, err
	}
	return u, nil
}

func getUser(ctx context.Context, rs Records, username string) (*User, error) {
	rec, err := rs.GetRecord(ctx, kindUser, username)
	if err != nil {
		return nil, err
	}
	var u User
	if err := json.Unmarshal(rec.Value, &u); err != nil {
		return nil, err
	}
	return &u, nil
}

// failures counts recent failed logins of one username.
type failures struct {
	Count       int       `json:"count"`
	LockedUntil time.Time `json:"lockedUntil"`
}

var errLocked = errors.New("account locked after repeated failed logins")
var errBadLogin = errors.New("wrong username or password")

// login checks a password with lockout: after LoginAttempts failures
// within LockoutPeriod the username is refused, right password or not,
// until the period has passed. Counters are per username (known or not,
// so the answer does not reveal which accounts exist) and live in the
// store, so every process sees the same count; each failure is a
// compare-and-set so concurrent guesses are all counted.
func (s *Server) login(ctx context.Context, username, password string) (*User, error) {
	now := s.cfg.Now()
	rec, err := s.rs.GetRecord(ctx, kindFail, username)
	var f failures
	switch {
	case err == nil:
		if err := json.Unmarshal(rec.Value, &f); err != nil {
			return nil, err
		}
		if now.Before(f.LockedUntil) {
			return nil, errLocked
		}
	case !errors.Is(err, store.ErrNotFound):
		return nil, err
	}
	u, err := getUser(ctx, s.rs, username)
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return nil, err
	}
	hash := dummyHash
	if u != nil && u.Hash != "" {
		hash = u.Hash
	}
	// Each check holds 64 MiB for a moment: bound how many run at once,
	// so a flood of logins queues instead of exhausting memory.
	select {
	case s.kdf <- struct{}{}:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	ok := checkPassword(hash, password)
	<-s.kdf
	if ok && u != nil && u.Hash != "" {
		_ = s.rs.DeleteRecord(ctx, kindFail, username)
		return u, nil
	}
	if err := s.countFailure(ctx, username); err != nil {
		return nil, err
	}
	return nil, errBadLogin
}

func (s *Server) countFailure(ctx context.Context, username string) error {
	for range 20 {
		now := s.cfg.Now()
		exp := now.Add(s.cfg.LockoutPeriod)
		rec, err := s.rs.GetRecord(ctx, kindFail, username)
		if errors.Is(err, store.ErrNotFound) {
			b, _ := json.Marshal(failures{Count: 1})
			err = s.rs.InsertRecord(ctx, store.Record{Kind: kindFail, Key: username, Value: b, Expires: exp})
			if errors.Is(err, store.ErrVersionConflict) {
				continue
			}
			return err
		}
		if err != nil {
			return err
		}
		var f failures
		if err := json.Unmarshal(rec.Value, &f); err != nil {
			return err
		}
		f.Count++
		if f.Count >= s.cfg.LoginAttempts {
			f.LockedUntil = exp
			s.log.Warn("login locked after repeated failures", "failures", f.Count)
		}
		rec.Value, _ = json.Marshal(f)
		rec.Expires = exp
		err = s.rs.SwapRecord(ctx, rec)
		if errors.Is(err, store.ErrVersionConflict) || errors.Is(err, store.ErrNotFound) {
			continue
		}
		return err
	}
	return errors.New("smart: login failure counter: too much contention")
}
