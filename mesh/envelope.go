package mesh

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// Message types of the 1-byte envelope prefix on memberlist user messages.
const (
	msgApp       byte = 1 // application payload sent to one node
	msgBroadcast byte = 2 // application payload gossiped to all; body = 8-byte id + payload
	msgLeave     byte = 3 // leave intent; empty body
	msgKeyReq    byte = 4 // key request; JSON body
	msgKeyResp   byte = 5 // key response; JSON body
)

var errBadEnvelope = errors.New("malformed message envelope")

// envelope is a decoded user message.
type envelope struct {
	typ  byte
	from string
	id   uint64 // msgBroadcast only
	body []byte
}

// encodeEnvelope builds: type, sender name length (1 byte), sender name,
// [8-byte big-endian id for broadcasts], body.
func encodeEnvelope(typ byte, from string, id uint64, body []byte) []byte {
	b := make([]byte, 0, 2+len(from)+8+len(body))
	b = append(b, typ, byte(len(from)))
	b = append(b, from...)
	if typ == msgBroadcast {
		b = binary.BigEndian.AppendUint64(b, id)
	}
	return append(b, body...)
}

// decodeEnvelope validates and splits a user message. The returned body
// aliases b.
func decodeEnvelope(b []byte) (envelope, error) {
	var e envelope
	if len(b) < 2 {
		return e, fmt.Errorf("%w: %d bytes", errBadEnvelope, len(b))
	}
	e.typ = b[0]
	if e.typ < msgApp || e.typ > msgKeyResp {
		return e, fmt.Errorf("%w: unknown type %d", errBadEnvelope, e.typ)
	}
	n := int(b[1])
	if n == 0 || n > maxNameLen || len(b) < 2+n {
		return e, fmt.Errorf("%w: bad sender name length %d", errBadEnvelope, n)
	}
	e.from = string(b[2 : 2+n])
	rest := b[2+n:]
	if e.typ == msgBroadcast {
		if len(rest) < 8 {
			return e, fmt.Errorf("%w: short broadcast id", errBadEnvelope)
		}
		e.id = binary.BigEndian.Uint64(rest)
		rest = rest[8:]
	}
	e.body = rest
	return e, nil
}
