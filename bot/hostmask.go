package bot

import "strings"

// ircLower folds s with the rfc1459 casemapping ([]\~ are the lower-case
// forms of {}|^), which is what ngircd and most networks use.
func ircLower(s string) string {
	return strings.Map(func(r rune) rune {
		switch {
		case r >= 'A' && r <= 'Z':
			return r + ('a' - 'A')
		case r == '[':
			return '{'
		case r == ']':
			return '}'
		case r == '\\':
			return '|'
		case r == '~':
			return '^'
		}
		return r
	}, s)
}

// nickEqual compares two nicks under rfc1459 casemapping.
func nickEqual(a, b string) bool { return ircLower(a) == ircLower(b) }

// MatchMask reports whether the hostmask pattern (with * matching any run
// of characters and ? matching one) matches s. Matching is case-insensitive
// (rfc1459). It runs in O(len(pattern)*len(s)) time with no recursion.
func MatchMask(pattern, s string) bool {
	p := []rune(ircLower(pattern))
	t := []rune(ircLower(s))
	pi, ti := 0, 0
	star, mark := -1, 0
	for ti < len(t) {
		switch {
		case pi < len(p) && (p[pi] == '?' || p[pi] == t[ti]):
			pi++
			ti++
		case pi < len(p) && p[pi] == '*':
			star = pi
			mark = ti
			pi++
		case star >= 0:
			pi = star + 1
			mark++
			ti = mark
		default:
			return false
		}
	}
	for pi < len(p) && p[pi] == '*' {
		pi++
	}
	return pi == len(p)
}

// IsEditor reports whether a user with the given hostmask
// ("nick!user@host") and services account ("" if unknown) matches one of
// the editor patterns: hostmask globs or "account:NAME".
func IsEditor(patterns []string, hostmask, account string) bool {
	for _, p := range patterns {
		p = strings.TrimSpace(p)
		if p == "" {
			continue
		}
		if name, ok := strings.CutPrefix(p, "account:"); ok {
			if account != "" && account != "*" && strings.EqualFold(name, account) {
				return true
			}
			continue
		}
		if MatchMask(p, hostmask) {
			return true
		}
	}
	return false
}
