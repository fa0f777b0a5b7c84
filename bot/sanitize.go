package bot

import (
	"strings"
	"unicode/utf8"
)

// Output limits. An IRC line is at most 512 bytes including CR LF and the
// prefix (":nick!user@host ") that the server adds when it relays the line.
const (
	// maxTextBytes caps the text of one PRIVMSG/NOTICE.
	maxTextBytes = 400
	// prefixReserve is what the relaying server may prepend (nick!user@host).
	prefixReserve = 100
	// maxLineBytes is the IRC line limit without CR LF.
	maxLineBytes = 510
)

// SanitizeText makes s safe as the trailing parameter of one IRC line: CR,
// LF and NUL become spaces, invalid UTF-8 becomes U+FFFD, and the result is
// cut to at most max bytes on a UTF-8 boundary (max <= 0 means no cut).
func SanitizeText(s string, max int) string {
	s = strings.ToValidUTF8(s, "\uFFFD")
	s = strings.Map(func(r rune) rune {
		switch r {
		case '\r', '\n', 0:
			return ' '
		}
		return r
	}, s)
	if max > 0 {
		s = TruncateUTF8(s, max)
	}
	return s
}

// TruncateUTF8 cuts s to at most max bytes without splitting a rune.
func TruncateUTF8(s string, max int) string {
	if len(s) <= max {
		return s
	}
	if max <= 0 {
		return ""
	}
	cut := max
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut]
}

// sanitizeParam makes a middle parameter (a target nick or channel) safe:
// it may contain no space, comma-separated lists are kept, and anything that
// is a control character is removed. A leading ':' is removed as it would
// turn the parameter into a trailing one.
func sanitizeParam(s string) string {
	s = strings.ToValidUTF8(s, "")
	s = strings.Map(func(r rune) rune {
		if r <= ' ' || r == 0x7f {
			return -1
		}
		return r
	}, s)
	s = strings.TrimLeft(s, ":")
	return TruncateUTF8(s, 200)
}

// textBudget is how many bytes of text fit into "PRIVMSG target :text" once
// the server has added its prefix.
func textBudget(command, target string) int {
	n := maxLineBytes - prefixReserve - len(command) - 1 - len(target) - 2
	if n > maxTextBytes {
		n = maxTextBytes
	}
	if n < 16 {
		n = 16
	}
	return n
}

// cleanInput makes text received from the network safe to process: invalid
// UTF-8 becomes U+FFFD and CR/LF/NUL become spaces.
func cleanInput(s string) string {
	return SanitizeText(s, 0)
}
