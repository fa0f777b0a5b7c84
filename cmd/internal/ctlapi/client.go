package ctlapi

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// DefaultSocket is the control socket of a node that runs with the default
// data_dir.
const DefaultSocket = "/var/lib/meshbot/meshbot.sock"

// Client talks to one node's control API. The zero value talks to
// [DefaultSocket]. A Client is safe for concurrent use once its fields are
// set.
type Client struct {
	// Socket is the Unix socket path; used when Addr is empty.
	// "" means DefaultSocket.
	Socket string
	// Addr is a TCP address (host:port or http://host:port) of a node's
	// control.listen. When set, Socket is ignored.
	Addr string
	// Token is sent as a bearer token (required with Addr).
	Token string
	// HTTPClient overrides the transport (tests). nil = built from Socket/Addr.
	HTTPClient *http.Client
}

// APIError is an error answered by the daemon. It unwraps to the sentinel
// matching its status (ErrNotFound, ErrInvalid, ...).
type APIError struct {
	StatusCode int
	Message    string
}

func (e *APIError) Error() string { return e.Message }

// Unwrap maps the HTTP status to this package's sentinel errors.
func (e *APIError) Unwrap() error {
	switch e.StatusCode {
	case http.StatusNotFound:
		return ErrNotFound
	case http.StatusBadRequest:
		return ErrInvalid
	case http.StatusUnauthorized:
		return ErrUnauthorized
	case http.StatusServiceUnavailable:
		return ErrUnavailable
	}
	return nil
}

func (c *Client) httpClient() (*http.Client, string) {
	if c.Addr != "" {
		base := c.Addr
		if !strings.Contains(base, "://") {
			base = "http://" + base
		}
		if c.HTTPClient != nil {
			return c.HTTPClient, strings.TrimRight(base, "/")
		}
		return &http.Client{Timeout: 2 * time.Minute}, strings.TrimRight(base, "/")
	}
	if c.HTTPClient != nil {
		return c.HTTPClient, "http://meshbot"
	}
	sock := c.Socket
	if sock == "" {
		sock = DefaultSocket
	}
	tr := &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", sock)
		},
		DisableKeepAlives: true,
	}
	return &http.Client{Transport: tr, Timeout: 2 * time.Minute}, "http://meshbot"
}

func (c *Client) where() string {
	if c.Addr != "" {
		return c.Addr
	}
	if c.Socket == "" {
		return DefaultSocket
	}
	return c.Socket
}

// factoidPath is the URL path of a factoid; an empty name is refused here
// because it cannot be expressed as a path.
func factoidPath(name, suffix string) (string, error) {
	if name == "" {
		return "", fmt.Errorf("%w: factoid name is empty", ErrInvalid)
	}
	if err := checkUTF8("factoid name", name); err != nil {
		return "", err
	}
	return "/v1/factoids/" + url.PathEscape(name) + suffix, nil
}

// checkUTF8 refuses text that is not valid UTF-8 before it is sent: JSON
// encoding would otherwise replace the bad bytes silently and the daemon
// would store something else than what the operator typed.
func checkUTF8(what, s string) error {
	if !utf8.ValidString(s) {
		return fmt.Errorf("%w: %s %q is not valid UTF-8", ErrInvalid, what, s)
	}
	return nil
}

func (c *Client) do(ctx context.Context, method, path string, in, out any) error {
	hc, base := c.httpClient()
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return fmt.Errorf("encode request: %w", err)
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, base+path, body)
	if err != nil {
		return fmt.Errorf("build request: %w", err)
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if c.Token != "" {
		req.Header.Set("Authorization", "Bearer "+c.Token)
	}
	resp, err := hc.Do(req)
	if err != nil {
		return fmt.Errorf("cannot reach meshbot at %s (is the daemon running? pick a node with -socket or MESHCTL_SOCKET): %w", c.where(), err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return fmt.Errorf("read response from %s: %w", c.where(), err)
	}
	if resp.StatusCode/100 != 2 {
		var e Error
		if json.Unmarshal(data, &e) != nil || e.Error == "" {
			e.Error = fmt.Sprintf("%s %s: %s", method, path, resp.Status)
		}
		return &APIError{StatusCode: resp.StatusCode, Message: e.Error}
	}
	if out == nil {
		return nil
	}
	if err := json.Unmarshal(data, out); err != nil {
		return fmt.Errorf("decode response of %s %s: %w", method, path, err)
	}
	return nil
}

// Members lists every member this node knows, in effective order.
func (c *Client) Members(ctx context.Context) ([]Member, error) {
	var v []Member
	return v, c.do(ctx, http.MethodGet, "/v1/members", nil, &v)
}

// Status describes the node.
func (c *Client) Status(ctx context.Context) (Status, error) {
	var v Status
	return v, c.do(ctx, http.MethodGet, "/v1/status", nil, &v)
}

// Reorder clears all demotions, restoring the static order mesh-wide.
func (c *Client) Reorder(ctx context.Context) error {
	return c.do(ctx, http.MethodPost, "/v1/reorder", struct{}{}, nil)
}

// Events returns up to n recent membership and failover events, oldest first.
func (c *Client) Events(ctx context.Context, n int) ([]Event, error) {
	var v []Event
	return v, c.do(ctx, http.MethodGet, "/v1/events?n="+strconv.Itoa(n), nil, &v)
}

// GetFactoid returns a factoid; forgotten factoids come back with Forgotten set.
func (c *Client) GetFactoid(ctx context.Context, name string) (Factoid, error) {
	var v Factoid
	p, err := factoidPath(name, "")
	if err != nil {
		return v, err
	}
	return v, c.do(ctx, http.MethodGet, p, nil, &v)
}

// SetFactoid creates or replaces a factoid.
func (c *Client) SetFactoid(ctx context.Context, name, value, author string) (Factoid, error) {
	var v Factoid
	p, err := factoidPath(name, "")
	if err != nil {
		return v, err
	}
	if err := errors.Join(checkUTF8("value", value), checkUTF8("author", author)); err != nil {
		return v, err
	}
	return v, c.do(ctx, http.MethodPut, p, SetFactoidRequest{Value: value, Author: author}, &v)
}

// ForgetFactoid soft-deletes a factoid.
func (c *Client) ForgetFactoid(ctx context.Context, name, author string) error {
	p, err := factoidPath(name, "/forget")
	if err != nil {
		return err
	}
	return c.do(ctx, http.MethodPost, p, ForgetRequest{Author: author}, nil)
}

// FactoidLog returns the edit history of a factoid, oldest first.
func (c *Client) FactoidLog(ctx context.Context, name string) ([]LogEntry, error) {
	var v []LogEntry
	p, err := factoidPath(name, "/log")
	if err != nil {
		return v, err
	}
	return v, c.do(ctx, http.MethodGet, p, nil, &v)
}

// SearchFactoids returns factoids whose name or value contain all words.
func (c *Client) SearchFactoids(ctx context.Context, words string, limit int) ([]Factoid, error) {
	var v []Factoid
	q := url.Values{"q": {words}, "limit": {strconv.Itoa(limit)}}
	return v, c.do(ctx, http.MethodGet, "/v1/search?"+q.Encode(), nil, &v)
}

// Import writes one batch of imported factoids; re-running it is safe.
func (c *Client) Import(ctx context.Context, req ImportRequest) (ImportResult, error) {
	var v ImportResult
	return v, c.do(ctx, http.MethodPost, "/v1/import", req, &v)
}

// Channels lists the replicated channel list.
func (c *Client) Channels(ctx context.Context) ([]string, error) {
	var v []string
	return v, c.do(ctx, http.MethodGet, "/v1/channels", nil, &v)
}

// AddChannel adds a channel the active node must sit in.
func (c *Client) AddChannel(ctx context.Context, name string) error {
	if err := checkUTF8("channel", name); err != nil {
		return err
	}
	return c.do(ctx, http.MethodPost, "/v1/channels", ChannelRequest{Name: name}, nil)
}

// RemoveChannel removes a channel from the replicated list.
func (c *Client) RemoveChannel(ctx context.Context, name string) error {
	return c.do(ctx, http.MethodDelete, "/v1/channels/"+url.PathEscape(name), nil, nil)
}

// Snapshots lists the node's snapshots, newest last.
func (c *Client) Snapshots(ctx context.Context) ([]Snapshot, error) {
	var v []Snapshot
	return v, c.do(ctx, http.MethodGet, "/v1/snapshots", nil, &v)
}

// CreateSnapshot writes and verifies a snapshot now.
func (c *Client) CreateSnapshot(ctx context.Context) (Snapshot, error) {
	var v Snapshot
	return v, c.do(ctx, http.MethodPost, "/v1/snapshots", struct{}{}, &v)
}

// RestoreSnapshot restores snapshot id and then heals from the peers.
func (c *Client) RestoreSnapshot(ctx context.Context, id string) error {
	return c.do(ctx, http.MethodPost, "/v1/snapshots/"+url.PathEscape(id)+"/restore", struct{}{}, nil)
}

// Keys lists the gossip keys installed across the mesh.
func (c *Client) Keys(ctx context.Context) (Keys, error) {
	var v Keys
	return v, c.do(ctx, http.MethodGet, "/v1/keys", nil, &v)
}

// KeyOp runs a mesh-wide key operation: "install", "use" or "remove".
func (c *Client) KeyOp(ctx context.Context, op string, key []byte) error {
	return c.do(ctx, http.MethodPost, "/v1/keys/"+url.PathEscape(op), KeyRequest{Key: base64.StdEncoding.EncodeToString(key)}, nil)
}

// IsNotFound reports whether err is a not-found answer.
func IsNotFound(err error) bool { return errors.Is(err, ErrNotFound) }
