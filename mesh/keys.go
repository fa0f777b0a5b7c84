package mesh

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/memberlist"
)

// Key operations carried in key request messages.
const (
	keyOpList    = "list"
	keyOpInstall = "install"
	keyOpUse     = "use"
	keyOpRemove  = "remove"
)

type keyRequest struct {
	ID  uint64 `json:"id"`
	Op  string `json:"op"`
	Key []byte `json:"key,omitempty"`
}

type keyResponse struct {
	ID    uint64   `json:"id"`
	From  string   `json:"-"`
	Error string   `json:"error,omitempty"`
	Keys  [][]byte `json:"keys,omitempty"`
}

// loadKeys returns the keys from KeyringFile if it exists, else Config.Keys.
func (m *Mesh) loadKeys() ([][]byte, error) {
	if m.cfg.KeyringFile == "" {
		return m.cfg.Keys, nil
	}
	b, err := os.ReadFile(m.cfg.KeyringFile)
	if errors.Is(err, fs.ErrNotExist) {
		return m.cfg.Keys, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read keyring file: %w", err)
	}
	keys, err := parseKeyringFile(b)
	if err != nil {
		return nil, fmt.Errorf("keyring file %s: %w", m.cfg.KeyringFile, err)
	}
	return keys, nil
}

// parseKeyringFile parses a JSON array of base64 keys (primary first).
func parseKeyringFile(b []byte) ([][]byte, error) {
	var strs []string
	if err := json.Unmarshal(b, &strs); err != nil {
		return nil, fmt.Errorf("%w: not a JSON array of base64 strings: %w", ErrBadKey, err)
	}
	if len(strs) == 0 {
		return nil, fmt.Errorf("%w: empty keyring", ErrBadKey)
	}
	keys := make([][]byte, 0, len(strs))
	for i, s := range strs {
		k, err := base64.StdEncoding.DecodeString(s)
		if err != nil {
			return nil, fmt.Errorf("%w: key %d: %w", ErrBadKey, i, err)
		}
		if err := memberlist.ValidateKey(k); err != nil {
			return nil, fmt.Errorf("%w: key %d: %w", ErrBadKey, i, err)
		}
		keys = append(keys, k)
	}
	return keys, nil
}

// saveKeys writes the keyring (primary first) to KeyringFile atomically.
func (m *Mesh) saveKeys() error {
	m.mu.Lock()
	kr := m.keyring
	m.mu.Unlock()
	if m.cfg.KeyringFile == "" || kr == nil {
		return nil
	}
	primary := kr.GetPrimaryKey()
	strs := []string{base64.StdEncoding.EncodeToString(primary)}
	for _, k := range kr.GetKeys() {
		if !bytes.Equal(k, primary) {
			strs = append(strs, base64.StdEncoding.EncodeToString(k))
		}
	}
	b, _ := json.Marshal(strs)
	if err := writeFileAtomic(m.cfg.KeyringFile, append(b, '\n'), 0o600); err != nil {
		return fmt.Errorf("save keyring: %w", err)
	}
	return nil
}

// writeFileAtomic writes data to a temp file in the same directory and
// renames it over path.
func writeFileAtomic(path string, data []byte, perm os.FileMode) error {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	_, werr := f.Write(data)
	if werr == nil {
		werr = f.Sync()
	}
	cerr := f.Close()
	if werr == nil {
		werr = cerr
	}
	if werr == nil {
		werr = os.Chmod(tmp, perm)
	}
	if werr == nil {
		werr = os.Rename(tmp, path)
	}
	if werr != nil {
		_ = os.Remove(tmp)
		return werr
	}
	return nil
}

// applyKeyOp performs op on the local keyring and persists it.
func (m *Mesh) applyKeyOp(op string, key []byte) ([][]byte, error) {
	m.mu.Lock()
	kr := m.keyring
	m.mu.Unlock()
	if kr == nil {
		return nil, ErrNoEncryption
	}
	var err error
	switch op {
	case keyOpList:
		return kr.GetKeys(), nil
	case keyOpInstall:
		err = kr.AddKey(key)
	case keyOpUse:
		err = kr.UseKey(key)
	case keyOpRemove:
		if bytes.Equal(kr.GetPrimaryKey(), key) {
			return nil, fmt.Errorf("%w: refusing to remove the primary key", ErrBadKey)
		}
		err = kr.RemoveKey(key)
	default:
		return nil, fmt.Errorf("unknown key operation %q", op)
	}
	if err != nil {
		return nil, fmt.Errorf("%s key: %w", op, err)
	}
	m.mu.Lock()
	m.eventLocked(EventKey, m.name, fmt.Sprintf("%s: %s key %s", m.name, op, keyID(key)))
	m.mu.Unlock()
	m.log.Info("keyring changed", "op", op, "key", keyID(key))
	if err := m.saveKeys(); err != nil {
		return nil, err
	}
	return nil, nil
}

// keyID describes a key in logs without revealing it.
func keyID(key []byte) string {
	return fmt.Sprintf("(%d bytes)", len(key))
}

// keyOp runs op on every alive node (including this one) and collects the
// answers. It returns the responses and an error naming failed nodes.
func (m *Mesh) keyOp(op string, key []byte) ([]keyResponse, int, error) {
	ml, ok := m.running()
	if !ok {
		return nil, 0, ErrNotRunning
	}
	m.mu.Lock()
	hasKeyring := m.keyring != nil
	m.mu.Unlock()
	if !hasKeyring {
		return nil, 0, ErrNoEncryption
	}
	if op != keyOpList {
		if err := memberlist.ValidateKey(key); err != nil {
			return nil, 0, fmt.Errorf("%w: %w", ErrBadKey, err)
		}
	}
	req := keyRequest{ID: randomID(), Op: op, Key: key}
	body, _ := json.Marshal(req)
	env := encodeEnvelope(msgKeyReq, m.name, 0, body)

	replies := make(chan keyResponse, 64)
	m.mu.Lock()
	m.keyWait[req.ID] = replies
	m.mu.Unlock()
	defer func() {
		m.mu.Lock()
		delete(m.keyWait, req.ID)
		m.mu.Unlock()
	}()

	var (
		resps   []keyResponse
		failed  []string
		mu      sync.Mutex
		wg      sync.WaitGroup
		pending = map[string]bool{}
	)
	nodes := ml.Members()
	asked := 1 // this node
	for _, n := range nodes {
		if n.Name == m.name {
			continue
		}
		pending[n.Name] = true
		asked++
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := ml.SendReliable(n, env); err != nil {
				mu.Lock()
				failed = append(failed, fmt.Sprintf("%s (send: %v)", n.Name, err))
				delete(pending, n.Name)
				mu.Unlock()
			}
		}()
	}
	// Local node.
	keys, err := m.applyKeyOp(op, key)
	local := keyResponse{ID: req.ID, From: m.name, Keys: keys}
	if err != nil {
		local.Error = err.Error()
	}
	resps = append(resps, local)
	wg.Wait()

	deadline := time.NewTimer(keyOpTimeout)
	defer deadline.Stop()
	for {
		mu.Lock()
		left := len(pending)
		mu.Unlock()
		if left == 0 {
			break
		}
		select {
		case r := <-replies:
			mu.Lock()
			if pending[r.From] {
				delete(pending, r.From)
				resps = append(resps, r)
			}
			mu.Unlock()
			continue
		case <-deadline.C:
		case <-m.stop:
		}
		break
	}
	for name := range pending {
		failed = append(failed, name+" (no reply)")
	}
	for _, r := range resps {
		if r.Error != "" {
			failed = append(failed, fmt.Sprintf("%s (%s)", r.From, r.Error))
		}
	}
	if len(failed) > 0 {
		sort.Strings(failed)
		return resps, asked, fmt.Errorf("%w: %s: %s", ErrKeyOp, op, strings.Join(failed, ", "))
	}
	return resps, asked, nil
}

// handleKeyRequest applies a peer's key request and replies.
func (m *Mesh) handleKeyRequest(from string, body []byte) {
	var req keyRequest
	if err := json.Unmarshal(body, &req); err != nil {
		m.log.Warn("bad key request", "from", from, "err", err)
		return
	}
	if req.Op != keyOpList {
		if err := memberlist.ValidateKey(req.Key); err != nil {
			m.replyKey(from, keyResponse{ID: req.ID, Error: fmt.Sprintf("bad key: %v", err)})
			return
		}
	}
	keys, err := m.applyKeyOp(req.Op, req.Key)
	resp := keyResponse{ID: req.ID, Keys: keys}
	if err != nil {
		resp.Error = err.Error()
	}
	m.replyKey(from, resp)
}

func (m *Mesh) replyKey(to string, resp keyResponse) {
	ml, ok := m.running()
	if !ok {
		return
	}
	n := findNode(ml, to)
	if n == nil {
		m.log.Warn("key request from unknown node", "from", to)
		return
	}
	body, _ := json.Marshal(resp)
	if err := ml.SendReliable(n, encodeEnvelope(msgKeyResp, m.name, 0, body)); err != nil {
		m.log.Warn("key reply", "to", to, "err", err)
	}
}

func (m *Mesh) handleKeyResponse(from string, body []byte) {
	var resp keyResponse
	if err := json.Unmarshal(body, &resp); err != nil {
		m.log.Warn("bad key response", "from", from, "err", err)
		return
	}
	resp.From = from
	m.mu.Lock()
	ch := m.keyWait[resp.ID]
	m.mu.Unlock()
	if ch == nil {
		return
	}
	select {
	case ch <- resp:
	default:
	}
}

// ListKeys asks every alive node for its keyring. It returns, per key
// (standard base64), how many nodes have it, and the number of nodes asked
// (including this one). err names the nodes that did not answer.
func (m *Mesh) ListKeys() (map[string]int, int, error) {
	resps, total, err := m.keyOp(keyOpList, nil)
	if resps == nil && err != nil {
		return nil, 0, err
	}
	counts := map[string]int{}
	for _, r := range resps {
		for _, k := range r.Keys {
			counts[base64.StdEncoding.EncodeToString(k)]++
		}
	}
	return counts, total, err
}

// InstallKey adds key to the keyring of every alive node (it is not used
// for sending until UseKey). The error names the nodes that failed.
func (m *Mesh) InstallKey(key []byte) error {
	_, _, err := m.keyOp(keyOpInstall, key)
	return err
}

// UseKey makes key (already installed) the primary key on every alive
// node. The error names the nodes that failed.
func (m *Mesh) UseKey(key []byte) error {
	_, _, err := m.keyOp(keyOpUse, key)
	return err
}

// RemoveKey removes key from every alive node. It refuses (ErrBadKey) to
// remove this node's primary key; other nodes refuse the same for theirs.
func (m *Mesh) RemoveKey(key []byte) error {
	m.mu.Lock()
	kr := m.keyring
	m.mu.Unlock()
	if kr != nil && bytes.Equal(kr.GetPrimaryKey(), key) {
		return fmt.Errorf("%w: refusing to remove the primary key", ErrBadKey)
	}
	_, _, err := m.keyOp(keyOpRemove, key)
	return err
}

// PrimaryKey returns the key this node encrypts with, or nil when gossip
// encryption is off.
func (m *Mesh) PrimaryKey() []byte {
	m.mu.Lock()
	kr := m.keyring
	m.mu.Unlock()
	if kr == nil {
		return nil
	}
	return kr.GetPrimaryKey()
}
