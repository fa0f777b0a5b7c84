package ctlapi

import (
	"context"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
)

// Sentinel errors a [Backend] wraps so the handler can pick the HTTP status;
// the client maps the status back to the same sentinel.
var (
	ErrNotFound     = errors.New("not found")    // 404
	ErrInvalid      = errors.New("invalid")      // 400
	ErrUnauthorized = errors.New("unauthorized") // 401
	ErrUnavailable  = errors.New("unavailable")  // 503: e.g. IRC disabled, store recovering
)

// Mark returns err marked with sentinel (one of the errors above, so the
// handler picks its status) while keeping err's own message.
func Mark(sentinel, err error) error { return &marked{sentinel: sentinel, err: err} }

type marked struct{ sentinel, err error }

func (m *marked) Error() string   { return m.err.Error() }
func (m *marked) Unwrap() []error { return []error{m.sentinel, m.err} }

// maxBody bounds every request body. An import batch is the largest request.
const maxBody = 8 << 20

// Backend is what the daemon implements to serve the API. Methods are called
// concurrently from HTTP handler goroutines and must be safe for that; they
// should honour ctx and return errors wrapping the sentinels above where one
// applies.
type Backend interface {
	Members(ctx context.Context) ([]Member, error)
	Status(ctx context.Context) (Status, error)
	Reorder(ctx context.Context) error
	Events(ctx context.Context, n int) ([]Event, error)

	GetFactoid(ctx context.Context, name string) (Factoid, error)
	SetFactoid(ctx context.Context, name, value, author string) (Factoid, error)
	ForgetFactoid(ctx context.Context, name, author string) error
	FactoidLog(ctx context.Context, name string) ([]LogEntry, error)
	SearchFactoids(ctx context.Context, words string, limit int) ([]Factoid, error)
	Import(ctx context.Context, req ImportRequest) (ImportResult, error)

	Channels(ctx context.Context) ([]string, error)
	AddChannel(ctx context.Context, name string) error
	RemoveChannel(ctx context.Context, name string) error

	Snapshots(ctx context.Context) ([]Snapshot, error)
	CreateSnapshot(ctx context.Context) (Snapshot, error)
	RestoreSnapshot(ctx context.Context, id string) error

	Keys(ctx context.Context) (Keys, error)
	InstallKey(ctx context.Context, key []byte) error
	UseKey(ctx context.Context, key []byte) error
	RemoveKey(ctx context.Context, key []byte) error
}

// NewHandler returns the API handler for b. If token is not empty every
// request must carry "Authorization: Bearer <token>" (the TCP listener);
// the Unix socket is protected by its file mode and passes "".
func NewHandler(b Backend, token string) http.Handler {
	mux := http.NewServeMux()
	h := &handler{b: b}
	mux.HandleFunc("GET /v1/members", h.members)
	mux.HandleFunc("GET /v1/status", h.status)
	mux.HandleFunc("POST /v1/reorder", h.reorder)
	mux.HandleFunc("GET /v1/events", h.events)
	mux.HandleFunc("GET /v1/factoids/{name}", h.getFactoid)
	mux.HandleFunc("PUT /v1/factoids/{name}", h.setFactoid)
	mux.HandleFunc("POST /v1/factoids/{name}/forget", h.forgetFactoid)
	mux.HandleFunc("GET /v1/factoids/{name}/log", h.factoidLog)
	mux.HandleFunc("GET /v1/search", h.search)
	mux.HandleFunc("POST /v1/import", h.importFacts)
	mux.HandleFunc("GET /v1/channels", h.channels)
	mux.HandleFunc("POST /v1/channels", h.addChannel)
	mux.HandleFunc("DELETE /v1/channels/{name}", h.removeChannel)
	mux.HandleFunc("GET /v1/snapshots", h.snapshots)
	mux.HandleFunc("POST /v1/snapshots", h.createSnapshot)
	mux.HandleFunc("POST /v1/snapshots/{id}/restore", h.restoreSnapshot)
	mux.HandleFunc("GET /v1/keys", h.keys)
	mux.HandleFunc("POST /v1/keys/{op}", h.keyOp)
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, fmt.Errorf("%w: no API endpoint %s %s", ErrNotFound, r.Method, r.URL.Path))
	})
	if token == "" {
		return mux
	}
	want := []byte("Bearer " + token)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got := []byte(r.Header.Get("Authorization"))
		if subtle.ConstantTimeCompare(got, want) != 1 {
			writeError(w, fmt.Errorf("%w: missing or wrong bearer token", ErrUnauthorized))
			return
		}
		mux.ServeHTTP(w, r)
	})
}

type handler struct{ b Backend }

func (h *handler) members(w http.ResponseWriter, r *http.Request) {
	v, err := h.b.Members(r.Context())
	reply(w, v, err)
}

func (h *handler) status(w http.ResponseWriter, r *http.Request) {
	v, err := h.b.Status(r.Context())
	reply(w, v, err)
}

func (h *handler) reorder(w http.ResponseWriter, r *http.Request) {
	reply(w, struct{}{}, h.b.Reorder(r.Context()))
}

func (h *handler) events(w http.ResponseWriter, r *http.Request) {
	n, err := intParam(r, "n", 100)
	if err != nil {
		writeError(w, err)
		return
	}
	v, err := h.b.Events(r.Context(), n)
	reply(w, v, err)
}

func (h *handler) getFactoid(w http.ResponseWriter, r *http.Request) {
	v, err := h.b.GetFactoid(r.Context(), r.PathValue("name"))
	reply(w, v, err)
}

func (h *handler) setFactoid(w http.ResponseWriter, r *http.Request) {
	var req SetFactoidRequest
	if !decode(w, r, &req) {
		return
	}
	v, err := h.b.SetFactoid(r.Context(), r.PathValue("name"), req.Value, req.Author)
	reply(w, v, err)
}

func (h *handler) forgetFactoid(w http.ResponseWriter, r *http.Request) {
	var req ForgetRequest
	if !decode(w, r, &req) {
		return
	}
	reply(w, struct{}{}, h.b.ForgetFactoid(r.Context(), r.PathValue("name"), req.Author))
}

func (h *handler) factoidLog(w http.ResponseWriter, r *http.Request) {
	v, err := h.b.FactoidLog(r.Context(), r.PathValue("name"))
	reply(w, v, err)
}

func (h *handler) search(w http.ResponseWriter, r *http.Request) {
	q := strings.TrimSpace(r.URL.Query().Get("q"))
	if q == "" {
		writeError(w, fmt.Errorf("%w: search needs words (parameter q)", ErrInvalid))
		return
	}
	limit, err := intParam(r, "limit", 50)
	if err != nil {
		writeError(w, err)
		return
	}
	v, err := h.b.SearchFactoids(r.Context(), q, limit)
	reply(w, v, err)
}

func (h *handler) importFacts(w http.ResponseWriter, r *http.Request) {
	var req ImportRequest
	if !decode(w, r, &req) {
		return
	}
	v, err := h.b.Import(r.Context(), req)
	reply(w, v, err)
}

func (h *handler) channels(w http.ResponseWriter, r *http.Request) {
	v, err := h.b.Channels(r.Context())
	reply(w, v, err)
}

func (h *handler) addChannel(w http.ResponseWriter, r *http.Request) {
	var req ChannelRequest
	if !decode(w, r, &req) {
		return
	}
	reply(w, struct{}{}, h.b.AddChannel(r.Context(), req.Name))
}

func (h *handler) removeChannel(w http.ResponseWriter, r *http.Request) {
	reply(w, struct{}{}, h.b.RemoveChannel(r.Context(), r.PathValue("name")))
}

func (h *handler) snapshots(w http.ResponseWriter, r *http.Request) {
	v, err := h.b.Snapshots(r.Context())
	reply(w, v, err)
}

func (h *handler) createSnapshot(w http.ResponseWriter, r *http.Request) {
	v, err := h.b.CreateSnapshot(r.Context())
	reply(w, v, err)
}

func (h *handler) restoreSnapshot(w http.ResponseWriter, r *http.Request) {
	reply(w, struct{}{}, h.b.RestoreSnapshot(r.Context(), r.PathValue("id")))
}

func (h *handler) keys(w http.ResponseWriter, r *http.Request) {
	v, err := h.b.Keys(r.Context())
	reply(w, v, err)
}

func (h *handler) keyOp(w http.ResponseWriter, r *http.Request) {
	var req KeyRequest
	if !decode(w, r, &req) {
		return
	}
	key, err := DecodeKey(req.Key)
	if err != nil {
		writeError(w, err)
		return
	}
	switch op := r.PathValue("op"); op {
	case "install":
		err = h.b.InstallKey(r.Context(), key)
	case "use":
		err = h.b.UseKey(r.Context(), key)
	case "remove":
		err = h.b.RemoveKey(r.Context(), key)
	default:
		err = fmt.Errorf("%w: unknown key operation %q (want install, use or remove)", ErrNotFound, op)
	}
	reply(w, struct{}{}, err)
}

// DecodeKey decodes a base64 gossip key and checks its length (16, 24 or 32
// bytes: AES-128, -192 or -256).
func DecodeKey(s string) ([]byte, error) {
	key, err := base64.StdEncoding.DecodeString(strings.TrimSpace(s))
	if err != nil {
		return nil, fmt.Errorf("%w: key is not valid base64: %v", ErrInvalid, err)
	}
	switch len(key) {
	case 16, 24, 32:
		return key, nil
	}
	return nil, fmt.Errorf("%w: key is %d bytes; want 16, 24 or 32 (generate one with 'meshbot keygen')", ErrInvalid, len(key))
}

func intParam(r *http.Request, name string, def int) (int, error) {
	s := r.URL.Query().Get(name)
	if s == "" {
		return def, nil
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("%w: parameter %s=%q is not a non-negative integer", ErrInvalid, name, s)
	}
	return n, nil
}

func decode(w http.ResponseWriter, r *http.Request, v any) bool {
	dec := json.NewDecoder(io.LimitReader(r.Body, maxBody))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		writeError(w, fmt.Errorf("%w: request body: %v", ErrInvalid, err))
		return false
	}
	return true
}

func reply(w http.ResponseWriter, v any, err error) {
	if err != nil {
		writeError(w, err)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(v)
}

func writeError(w http.ResponseWriter, err error) {
	code := http.StatusInternalServerError
	switch {
	case errors.Is(err, ErrNotFound):
		code = http.StatusNotFound
	case errors.Is(err, ErrInvalid):
		code = http.StatusBadRequest
	case errors.Is(err, ErrUnauthorized):
		code = http.StatusUnauthorized
	case errors.Is(err, ErrUnavailable):
		code = http.StatusServiceUnavailable
	case errors.Is(err, context.DeadlineExceeded):
		code = http.StatusGatewayTimeout
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(Error{Error: err.Error()})
}
