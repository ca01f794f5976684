package slack

import (
	"cmp"
	"strings"
)

// unescaper decodes the three entities Slack encodes in text it sends.
var unescaper = strings.NewReplacer("&amp;", "&", "&lt;", "<", "&gt;", ">")

// ParseCommandText splits the text of a slash command as Slack sends it into
// the subcommand, its arguments and the free text after the subcommand.
//
// Slack encodes &, < and > as entities and sends mentions and links as
// <@U123|name>, <#C123|name>, <!here>, <!subteam^S1|@team> and
// <https://x|label>. In args a user mention becomes its id (U123), a channel
// its id, a link its URL; in text they read as typed (@name, #name, the URL).
// Text in double quotes (straight or curly) stays one arg.
func ParseCommandText(raw string) (name string, args []string, text string) {
	toks := tokens(raw)
	full := strings.TrimSpace(strings.Join(joinWords(toks), ""))
	words := splitArgs(toks)
	if len(words) == 0 {
		return "", nil, ""
	}
	name = strings.ToLower(words[0])
	if len(words) > 1 {
		args = words[1:]
	}
	text = strings.TrimSpace(strings.TrimPrefix(full, firstWord(full)))
	return name, args, text
}

// token is a run of text or one Slack entity.
type token struct {
	text   string // as it reads ("@alice", "https://x")
	arg    string // as an argument ("U123", "https://x")
	entity bool
}

// tokens decodes raw into plain runs and entities.
func tokens(raw string) []token {
	var out []token
	for raw != "" {
		lt := strings.IndexByte(raw, '<')
		if lt < 0 {
			out = append(out, plainToken(raw))
			break
		}
		gt := strings.IndexByte(raw[lt:], '>')
		if gt < 0 {
			out = append(out, plainToken(raw))
			break
		}
		if lt > 0 {
			out = append(out, plainToken(raw[:lt]))
		}
		out = append(out, entityToken(raw[lt+1:lt+gt]))
		raw = raw[lt+gt+1:]
	}
	return out
}

func plainToken(s string) token {
	s = unescaper.Replace(s)
	return token{text: s, arg: s}
}

// entityToken decodes the inside of <...>.
func entityToken(in string) token {
	target, label, hasLabel := strings.Cut(in, "|")
	target = unescaper.Replace(target)
	label = unescaper.Replace(label)
	switch {
	case strings.HasPrefix(target, "@"):
		id := target[1:]
		return token{text: "@" + cmp.Or(label, id), arg: id, entity: true}
	case strings.HasPrefix(target, "#"):
		id := target[1:]
		return token{text: "#" + cmp.Or(label, id), arg: id, entity: true}
	case strings.HasPrefix(target, "!"):
		// <!here>, <!channel>, <!subteam^S1|@team>, <!date^...|fallback>
		kw := target[1:]
		if hasLabel {
			return token{text: label, arg: label, entity: true}
		}
		if i := strings.IndexByte(kw, '^'); i >= 0 {
			kw = kw[:i]
		}
		return token{text: "@" + kw, arg: "@" + kw, entity: true}
	default:
		if hasLabel && label != "" && label != target && strings.TrimPrefix(strings.TrimPrefix(target, "https://"), "http://") != label &&
			strings.TrimPrefix(target, "mailto:") != label {
			return token{text: label + " (" + target + ")", arg: target, entity: true}
		}
		return token{text: target, arg: target, entity: true}
	}
}

// joinWords returns each token's readable text.
func joinWords(toks []token) []string {
	out := make([]string, len(toks))
	for i, t := range toks {
		out[i] = t.text
	}
	return out
}

func firstWord(s string) string {
	if i := strings.IndexAny(s, " \t\n"); i >= 0 {
		return s[:i]
	}
	return s
}

// isQuote reports whether r opens or closes a quoted argument.
func isQuote(r rune) bool { return r == '"' || r == '“' || r == '”' }

// splitArgs splits tokens into words on whitespace outside quotes. An entity
// is a word of its own (its argument form) unless it sits inside quotes.
func splitArgs(toks []token) []string {
	var words []string
	var cur strings.Builder
	inWord, quoted := false, false
	flush := func() {
		if inWord {
			words = append(words, cur.String())
		}
		cur.Reset()
		inWord = false
	}
	for _, t := range toks {
		if t.entity {
			if quoted {
				cur.WriteString(t.text)
			} else {
				cur.WriteString(t.arg)
			}
			inWord = true
			continue
		}
		for _, r := range t.text {
			switch {
			case isQuote(r):
				if quoted {
					quoted = false
					inWord = true
					flush()
				} else {
					flush()
					quoted = true
					inWord = true
				}
			case !quoted && (r == ' ' || r == '\t' || r == '\n' || r == '\u00a0'):
				flush()
			default:
				cur.WriteRune(r)
				inWord = true
			}
		}
	}
	flush()
	return words
}
