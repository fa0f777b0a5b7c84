package ctlapi

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// errBackend answers every call with err (embedding a nil Backend makes
// any method not overridden panic, which the tests would notice).
type errBackend struct {
	Backend
	err  error
	name string
}

func (b *errBackend) GetFactoid(_ context.Context, name string) (Factoid, error) {
	b.name = name
	return Factoid{Name: name, Value: "v"}, b.err
}

func (b *errBackend) Status(context.Context) (Status, error) { return Status{Name: "n1"}, b.err }

func (b *errBackend) SetFactoid(_ context.Context, name, value, author string) (Factoid, error) {
	return Factoid{Name: name, Value: value, Author: author}, b.err
}

func client(t *testing.T, b Backend, token, clientToken string) *Client {
	srv := httptest.NewServer(NewHandler(b, token))
	t.Cleanup(srv.Close)
	return &Client{Addr: srv.URL, Token: clientToken, HTTPClient: srv.Client()}
}

func TestErrorMapping(t *testing.T) {
	tests := []struct {
		err  error
		want error
		code int
	}{
		{fmt.Errorf("%w: factoid x", ErrNotFound), ErrNotFound, 404},
		{fmt.Errorf("%w: name too long", ErrInvalid), ErrInvalid, 400},
		{fmt.Errorf("%w: recovering", ErrUnavailable), ErrUnavailable, 503},
		{errors.New("disk on fire"), nil, 500},
	}
	for _, tt := range tests {
		t.Run(tt.err.Error(), func(t *testing.T) {
			c := client(t, &errBackend{err: tt.err}, "", "")
			_, err := c.GetFactoid(context.Background(), "x")
			var ae *APIError
			if !errors.As(err, &ae) || ae.StatusCode != tt.code {
				t.Fatalf("err = %v (%T), want status %d", err, err, tt.code)
			}
			if tt.want != nil && !errors.Is(err, tt.want) {
				t.Errorf("errors.Is(%v, %v) = false", err, tt.want)
			}
			if !strings.Contains(err.Error(), tt.err.Error()) {
				t.Errorf("message %q lost the server's %q", err, tt.err)
			}
		})
	}
}

func TestPathEscaping(t *testing.T) {
	b := &errBackend{}
	c := client(t, b, "", "")
	for _, name := range []string{"foo-#ubuntu", "a/b", "what is this?", "ünïcode"} {
		f, err := c.GetFactoid(context.Background(), name)
		if err != nil || b.name != name || f.Name != name {
			t.Errorf("name %q arrived as %q (err %v)", name, b.name, err)
		}
	}
	if _, err := c.GetFactoid(context.Background(), ""); !errors.Is(err, ErrInvalid) {
		t.Errorf("empty name: %v", err)
	}
}

func TestBearerToken(t *testing.T) {
	tests := []struct {
		client string
		ok     bool
	}{{"t0ken", true}, {"wrong", false}, {"", false}}
	for _, tt := range tests {
		c := client(t, &errBackend{}, "t0ken", tt.client)
		_, err := c.Status(context.Background())
		if tt.ok != (err == nil) {
			t.Errorf("token %q: err = %v", tt.client, err)
		}
		if !tt.ok && !errors.Is(err, ErrUnauthorized) {
			t.Errorf("token %q: want ErrUnauthorized, got %v", tt.client, err)
		}
	}
}

func TestBadRequests(t *testing.T) {
	srv := httptest.NewServer(NewHandler(&errBackend{}, ""))
	defer srv.Close()
	tests := []struct {
		method, path, body string
		code               int
	}{
		{"PUT", "/v1/factoids/x", `{"value":"v","bogus":1}`, 400},
		{"PUT", "/v1/factoids/x", `not json`, 400},
		{"GET", "/v1/events?n=-3", "", 400},
		{"GET", "/v1/search", "", 400},
		{"POST", "/v1/keys/install", `{"key":"c2hvcnQ="}`, 400},
		{"GET", "/v1/nothing", "", 404},
		{"DELETE", "/v1/members", "", 404}, // JSON "no API endpoint DELETE /v1/members"
	}
	for _, tt := range tests {
		req, _ := http.NewRequest(tt.method, srv.URL+tt.path, strings.NewReader(tt.body))
		resp, err := srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != tt.code {
			t.Errorf("%s %s %s: status %d, want %d", tt.method, tt.path, tt.body, resp.StatusCode, tt.code)
		}
	}
}

func TestDecodeKey(t *testing.T) {
	tests := []struct {
		in, wantErr string
	}{
		{"MDEyMzQ1Njc4OWFiY2RlZg==", ""},                     // 16 bytes
		{"MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3", ""},             // 24 bytes
		{"MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=", ""}, // 32 bytes
		{" MDEyMzQ1Njc4OWFiY2RlZg==\n", ""},                  // whitespace tolerated
		{"c2hvcnQ=", "is 5 bytes; want 16, 24 or 32"},
		{"***", "not valid base64"},
	}
	for _, tt := range tests {
		_, err := DecodeKey(tt.in)
		if tt.wantErr == "" && err != nil {
			t.Errorf("DecodeKey(%q) = %v", tt.in, err)
		}
		if tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)) {
			t.Errorf("DecodeKey(%q) = %v, want %q", tt.in, err, tt.wantErr)
		}
	}
}
