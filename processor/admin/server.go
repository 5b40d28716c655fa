package admin

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/triggerd/triggerd/processor"
	"github.com/triggerd/triggerd/schemas"
	"github.com/triggerd/triggerd/state"
)

// Config configures the admin API.
type Config struct {
	// Token is the bearer token every request must carry. Required.
	Token string
	// AllowWrites enables POST /customers/{id}/erase; without it the API
	// is read-only and an erase is refused with 403.
	AllowWrites bool
}

// Server serves the admin API of one instance.
type Server struct {
	proc   *processor.Processor
	store  *state.Store
	log    *zap.Logger
	token  [sha256.Size]byte // the token's hash: compared in constant time
	writes bool
}

// New returns the admin API of proc, reading committed state from store.
// It refuses an empty token: an admin API without authentication would
// hand out customer data to anyone who can reach the port.
func New(proc *processor.Processor, store *state.Store, cfg Config, log *zap.Logger) (*Server, error) {
	var errs []error
	if proc == nil || store == nil {
		errs = append(errs, errors.New("admin: a processor and a state store are required"))
	}
	if cfg.Token == "" {
		errs = append(errs, errors.New("admin: token: required (every request must carry it as a bearer token)"))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	if log == nil {
		log = zap.NewNop()
	}
	return &Server{proc: proc, store: store, log: log, token: sha256.Sum256([]byte(cfg.Token)), writes: cfg.AllowWrites}, nil
}

// Handler returns the API's HTTP handler: every route behind the token.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /customers/{id}", s.getCustomer)
	mux.HandleFunc("GET /customers/{id}/explain", s.explain)
	mux.HandleFunc("POST /customers/{id}/erase", s.erase)
	return s.auth(mux)
}

// readHeaderTimeout guards the server against slow clients.
const readHeaderTimeout = 5 * time.Second

// NewHTTPServer returns an HTTP server for Handler on addr.
func (s *Server) NewHTTPServer(addr string) *http.Server {
	return &http.Server{Addr: addr, Handler: s.Handler(), ReadHeaderTimeout: readHeaderTimeout}
}

// auth refuses a request without the bearer token. The hashes are compared
// in constant time, so neither the token's content nor its length leaks
// through the response time.
func (s *Server) auth(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		sum := sha256.Sum256([]byte(tok))
		if !ok || subtle.ConstantTimeCompare(sum[:], s.token[:]) != 1 {
			w.Header().Set("WWW-Authenticate", `Bearer realm="triggerd-admin"`)
			writeError(w, http.StatusUnauthorized, "admin: a valid bearer token is required")
			return
		}
		next.ServeHTTP(w, r)
	})
}

// locate finds the customer's partition and whether this instance answers
// for it. Otherwise it has written the redirect or the 503, and ok is false.
func (s *Server) locate(w http.ResponseWriter, r *http.Request) (id schemas.CustomerID, part int32, ok bool) {
	id = schemas.CustomerID(r.PathValue("id"))
	if id == "" {
		writeError(w, http.StatusBadRequest, "admin: empty customer ID")
		return id, 0, false
	}
	n := s.proc.Partitions()
	if n == 0 {
		writeError(w, http.StatusServiceUnavailable, "admin: the processor has not joined the cluster yet; retry")
		return id, 0, false
	}
	part = s.proc.CustomerPartition(id, n)
	if s.proc.Serves(part) {
		return id, part, true
	}
	ctx, cancel := context.WithTimeout(r.Context(), 10*time.Second)
	defer cancel()
	owner, found, err := s.proc.PartitionOwner(ctx, part)
	w.Header().Set("X-Triggerd-Partition", strconv.Itoa(int(part)))
	switch {
	case err != nil:
		writeError(w, http.StatusServiceUnavailable, fmt.Sprintf("admin: partition %d is not served here, and the group could not be asked who owns it: %v", part, err))
	case !found:
		writeError(w, http.StatusServiceUnavailable, fmt.Sprintf("admin: partition %d is not assigned to any instance right now (a rebalance may be moving it); retry", part))
	case owner.Self:
		writeError(w, http.StatusServiceUnavailable, fmt.Sprintf("admin: partition %d is assigned to this instance, which is restoring its state; retry", part))
	case owner.Admin == "":
		writeError(w, http.StatusServiceUnavailable, fmt.Sprintf("admin: partition %d is owned by instance %q, which advertises no admin address", part, owner.InstanceID))
	default:
		// 307 keeps the method. Clients must send the token again
		// (Go's client drops Authorization on a redirect to another
		// host; the CLI's client re-adds it).
		w.Header().Set("X-Triggerd-Owner", owner.InstanceID)
		http.Redirect(w, r, strings.TrimSuffix(owner.Admin, "/")+r.URL.RequestURI(), http.StatusTemporaryRedirect)
	}
	return id, part, false
}

func (s *Server) read(w http.ResponseWriter, r *http.Request) (cs state.CustomerState, part int32, found, ok bool) {
	id, part, ok := s.locate(w, r)
	if !ok {
		return cs, part, false, false
	}
	cs, found, err := s.store.ReadCustomer(part, id)
	if err != nil {
		s.log.Error("admin: reading a customer", zap.Int32("partition", part), zap.Error(err))
		writeError(w, http.StatusInternalServerError, "admin: reading the state failed (see the instance's log)")
		return cs, part, false, false
	}
	return cs, part, found, true
}

func (s *Server) getCustomer(w http.ResponseWriter, r *http.Request) {
	cs, part, found, ok := s.read(w, r)
	if !ok {
		return
	}
	v := customerView(&cs, found)
	v.Partition, v.Instance = part, s.proc.InstanceID()
	status := http.StatusOK
	if !found {
		status = http.StatusNotFound
	}
	writeJSON(w, status, v)
}

func (s *Server) explain(w http.ResponseWriter, r *http.Request) {
	cs, part, found, ok := s.read(w, r)
	if !ok {
		return
	}
	v := explainView(&cs, found)
	v.Partition, v.Instance = part, s.proc.InstanceID()
	status := http.StatusOK
	if !found {
		status = http.StatusNotFound
	}
	writeJSON(w, status, v)
}

// EraseAccepted is the answer to an erase: where the erase event was
// written. The owner erases when it processes it; the erased record on the
// trigger topic (kind "erased", caused_by the event ID) says it is done.
type EraseAccepted struct {
	CustomerID string `json:"customer_id"`
	EventID    string `json:"event_id"`
	Topic      string `json:"topic"`
	Partition  int32  `json:"partition"`
	Offset     int64  `json:"offset"`
}

func (s *Server) erase(w http.ResponseWriter, r *http.Request) {
	if !s.writes {
		writeError(w, http.StatusForbidden, "admin: this admin API is read-only (admin.allow_writes is off)")
		return
	}
	id := schemas.CustomerID(r.PathValue("id"))
	if id == "" {
		writeError(w, http.StatusBadRequest, "admin: empty customer ID")
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), 30*time.Second)
	defer cancel()
	rc, err := s.proc.ProduceErase(ctx, id)
	if err != nil {
		writeError(w, http.StatusServiceUnavailable, err.Error())
		return
	}
	// Who asked is for the operator's log; the customer ID is not.
	s.log.Info("admin: erase requested", zap.String("event_id", rc.EventID), zap.Int32("partition", rc.Partition),
		zap.Int64("offset", rc.Offset), zap.String("remote", r.RemoteAddr))
	writeJSON(w, http.StatusAccepted, EraseAccepted{CustomerID: string(id), EventID: rc.EventID,
		Topic: s.proc.ProfilesTopic(), Partition: rc.Partition, Offset: rc.Offset})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}

// apiError is the body of every error answer.
type apiError struct {
	Error string `json:"error"`
}

func writeError(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, apiError{Error: msg})
}
