package bot

import (
	"cmp"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// The /experts grammar (README.md, "Using it"): a subcommand word, then
// words; text in double quotes (straight or curly) is one word. On Discord
// the same arguments arrive as typed options, read by name.

// Verbs.
const (
	vAsk          = "ask"
	vAlert        = "alert"
	vDevice       = "device"
	vFile         = "file"
	vIncident     = "incident"
	vStatus       = "status"
	vCases        = "cases"
	vCredits      = "credits"
	vHelp         = "help"
	vTake         = "take"
	vAssign       = "assign"
	vMoreInfo     = "more-info"
	vSample       = "sample"
	vMoreTime     = "more-time"
	vConclude     = "conclude"
	vNote         = "note"
	vResolve      = "resolve" // another name for conclude (README.md, "Using it")
	vSampleNotify = "sample-notification"
	vIncidents    = "incidents"
	vUpload       = "upload"
	vOncall       = "oncall"
)

// request is a parsed /experts command.
type request struct {
	verb    string
	ref     string      // case reference, EOD-<n>
	kind    SubjectKind // for ask/alert/device/file/incident
	id      string      // subject id
	user    string      // assign target
	filter  string      // cases filter
	org     string      // cases/credits org filter for experts and managers
	text    string      // question, summary, note
	hasText bool
	search  string // cases search text
	period  string // report period: week, month, quarter ("": quarter)
	take    bool   // oncall take
	action  string // campaign show, tag or share (insight.go)
}

// usageError answers bad input: what was wrong and what a valid one looks like.
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

func badInput(format string, args ...any) *usageError {
	return &usageError{msg: fmt.Sprintf(format, args...)}
}

var (
	refPattern      = regexp.MustCompile(`(?i)^(?:EOD-?)?([0-9]{1,12})$`)
	alertPattern    = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.:-]{5,127}$`)
	deviceIDPattern = regexp.MustCompile(`^[0-9a-fA-F]{40}$`)
	hostPattern     = regexp.MustCompile(`^[A-Za-z0-9](?:[A-Za-z0-9-]{0,62})(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,62}))*$`)
	hexPattern      = regexp.MustCompile(`^[0-9a-fA-F]+$`)
	incidentPattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$`)
	slackUserArg    = regexp.MustCompile(`^<@([UW][A-Z0-9]+)(?:\|[^>]*)?>$`)
	discordUserArg  = regexp.MustCompile(`^<@!?([0-9]{15,21})>$`)
)

// Hints shown with bad input.
const (
	hintRef      = "a case reference looks like EOD-1042 (it is on the case's receipt and desk card)"
	hintAlert    = "an alert id looks like da637551227677560813_-961444813 (Defender or Microsoft Graph alert id)"
	hintDevice   = "a device is a Defender device id (40 hex digits, e.g. 111e6dd8c833c8a052ea231ec1b19adaf497b625) or a host name (e.g. ws-017.contoso.local)"
	hintFile     = "a file is its SHA-1 (40 hex digits) or SHA-256 (64 hex digits), e.g. 4b6f1c2d8a9e0f1a2b3c4d5e6f708192a3b4c5d6"
	hintIncident = "an incident id is threatdesk's incident number, as on the notification card (\"Incident 42\"), e.g. 42"
	hintUser     = "mention the expert, e.g. @alice (or give their user id)"
	hintFilter   = "the list is one of open, mine, breaching or all, e.g. /experts cases breaching"
)

// tokenize splits text into words; double-quoted text is one word.
func tokenize(s string) []string {
	var out []string
	var cur strings.Builder
	in, have := false, false
	for _, r := range s {
		switch {
		case r == '"' || r == '“' || r == '”':
			in = !in
			have = true
		case unicode.IsSpace(r) && !in:
			if have {
				out = append(out, cur.String())
				cur.Reset()
				have = false
			}
		default:
			cur.WriteRune(r)
			have = true
		}
	}
	if have {
		out = append(out, cur.String())
	}
	return out
}

// args returns the command's words: the adapter's, or the text's own.
func commandArgs(c Command) []string {
	if len(c.Args) > 0 {
		return c.Args
	}
	return tokenize(c.Text)
}

// rest joins the words from i on: the free text after the identifiers.
func rest(args []string, i int) string {
	if i >= len(args) {
		return ""
	}
	return strings.TrimSpace(strings.Join(args[i:], " "))
}

// freeText is a command's free text (a question, a note, a summary) after
// its first n arguments, as the person typed it: from c.Text (Slack's
// readable text, with quotes, mentions as @name and spacing kept), one
// quoted whole unquoted. Without it (typed options, or no verb) the
// arguments are joined.
func freeText(c Command, args []string, n int) string {
	if c.Text == "" || c.Name == "" || len(c.Options) > 0 {
		return rest(args, n)
	}
	t := c.Text
	for range n {
		t = strings.TrimLeftFunc(t, unicode.IsSpace)
		end := strings.IndexFunc(t, unicode.IsSpace)
		if r, size := utf8.DecodeRuneInString(t); isQuoteRune(r) {
			// A quoted argument ends at its closing quote.
			if i := strings.IndexFunc(t[size:], isQuoteRune); i >= 0 {
				end = size + i + utf8.RuneLen([]rune(t[size+i:])[0])
			}
		}
		if end < 0 {
			return ""
		}
		t = t[end:]
	}
	t = strings.TrimSpace(t)
	if first, size := utf8.DecodeRuneInString(t); isQuoteRune(first) && len(t) > size {
		last, lsize := utf8.DecodeLastRuneInString(t)
		if inner := t[size : len(t)-lsize]; isQuoteRune(last) && !strings.ContainsFunc(inner, isQuoteRune) {
			t = strings.TrimSpace(inner)
		}
	}
	return t
}

// isQuoteRune reports whether r opens or closes a quoted argument.
func isQuoteRune(r rune) bool { return r == '"' || r == '“' || r == '”' }

// normRef turns "eod-12", "EOD12" or "12" into "EOD-12".
func normRef(s string) (string, bool) {
	m := refPattern.FindStringSubmatch(strings.TrimSpace(strings.TrimPrefix(s, "#")))
	if m == nil {
		return "", false
	}
	n, err := strconv.ParseInt(m[1], 10, 64)
	if err != nil || n <= 0 {
		return "", false
	}
	return "EOD-" + strconv.FormatInt(n, 10), true
}

// normUser accepts a resolved user id or a raw mention.
func normUser(p Platform, s string) (string, bool) {
	s = strings.TrimPrefix(strings.TrimSpace(s), "@")
	if m := slackUserArg.FindStringSubmatch(s); m != nil {
		return m[1], true
	}
	if m := discordUserArg.FindStringSubmatch(s); m != nil {
		return m[1], true
	}
	switch p {
	case Slack:
		return s, slackUserPattern.MatchString(s)
	case Discord:
		return s, IsDiscordID(s)
	}
	return s, s != ""
}

// validSubject checks a subject id and returns it normalised.
func validSubject(kind SubjectKind, id string) (string, *usageError) {
	switch kind {
	case SubjectAlert:
		if !alertPattern.MatchString(id) {
			return "", badInput("%q is not an alert id: %s.", id, hintAlert)
		}
	case SubjectDevice:
		if !deviceIDPattern.MatchString(id) && (!hostPattern.MatchString(id) || len(id) > 253 || hexPattern.MatchString(id) && len(id) > 15) {
			return "", badInput("%q is not a device: %s.", id, hintDevice)
		}
		if deviceIDPattern.MatchString(id) {
			id = strings.ToLower(id)
		}
	case SubjectFile:
		if !hexPattern.MatchString(id) || (len(id) != 40 && len(id) != 64) {
			extra := ""
			if hexPattern.MatchString(id) && len(id) == 32 {
				extra = " (that looks like an MD5, which is too weak to identify a file)"
			}
			return "", badInput("%q is not a file hash%s: %s.", id, extra, hintFile)
		}
		id = strings.ToLower(id)
	case SubjectIncident:
		if !incidentPattern.MatchString(id) {
			return "", badInput("%q is not an incident id: %s.", id, hintIncident)
		}
	case SubjectIP, SubjectURL, SubjectActor:
		return validInsightSubject(kind, id)
	}
	return id, nil
}

// opt reads a Discord option by any of its names.
func opt(c Command, names ...string) string {
	for _, n := range names {
		if v, ok := c.Options[n]; ok {
			return strings.TrimSpace(v)
		}
	}
	return ""
}

// parse reads a command into a request, or says what is wrong with it.
func parse(c Command) (request, *usageError) {
	verb := strings.ToLower(strings.TrimSpace(c.Name))
	args := commandArgs(c)
	if verb == "" && len(args) > 0 && len(c.Options) == 0 {
		verb, args = strings.ToLower(args[0]), args[1:]
	}
	if verb == vResolve {
		verb = vConclude
	}
	r := request{verb: verb}
	typed := len(c.Options) > 0
	// first returns argument 0 (or the typed option) and the text after it.
	first := func(names ...string) (string, string) {
		if typed {
			return opt(c, names...), opt(c, "question", "text", "summary")
		}
		if len(args) == 0 {
			return "", ""
		}
		return args[0], freeText(c, args, 1)
	}
	needRef := func(usage string) *usageError {
		id, text := first("case", "ref")
		if id == "" {
			return badInput("Which case? Usage: %s, where %s.", usage, hintRef)
		}
		ref, ok := normRef(id)
		if !ok {
			return badInput("%q is not a case reference: %s. Usage: %s.", id, hintRef, usage)
		}
		r.ref, r.text = ref, text
		r.hasText = text != ""
		return nil
	}
	switch verb {
	case "", vHelp:
		r.verb = vHelp
	case vAsk:
		r.kind = SubjectNone
		if typed {
			r.text = opt(c, "question", "text")
		} else {
			r.text = freeText(c, args, 0)
		}
		r.hasText = r.text != ""
	case vAlert, vDevice, vFile, vIncident, vIP, vURL, vActor:
		r.kind = SubjectKind(verb)
		id, text := first("id", string(verb))
		if id == "" {
			hint := map[string]string{vAlert: hintAlert, vDevice: hintDevice, vFile: hintFile, vIncident: hintIncident,
				vIP: hintIP, vURL: hintURL, vActor: hintActor}[verb]
			return r, badInput("Which %s? Usage: /experts %s <id> [question], where %s.", verb, verb, hint)
		}
		nid, err := validSubject(r.kind, id)
		if err != nil {
			return r, err
		}
		r.id, r.text, r.hasText = nid, text, text != ""
	case vStatus:
		if err := needRef("/experts status EOD-1042"); err != nil {
			return r, err
		}
	case vCases:
		if ok, err := parseCasesSearch(c, args, typed, &r); ok || err != nil {
			if err != nil {
				return r, err
			}
			break
		}
		f, o := "open", ""
		if typed {
			f, o = strings.ToLower(cmp.Or(opt(c, "filter", "which"), "open")), opt(c, "org")
		} else {
			for _, a := range args {
				la := strings.ToLower(a)
				switch la {
				case "open", "mine", "breaching", "all":
					f = la
				default:
					if strings.HasPrefix(la, "org:") || strings.HasPrefix(la, "org=") {
						o = la[4:]
					} else if o == "" && orgIDPattern.MatchString(la) {
						o = la
					} else {
						return r, badInput("%q is not a list: %s (experts and managers may add an org id).", a, hintFilter)
					}
				}
			}
		}
		switch f {
		case "open", "mine", "breaching", "all":
		default:
			return r, badInput("%q is not a list: %s.", f, hintFilter)
		}
		r.filter, r.org = f, o
	case vCredits:
		if typed {
			r.org = opt(c, "org")
		} else if len(args) > 0 {
			r.org = strings.ToLower(args[0])
		}
	case vTake:
		id, _ := first("case", "ref")
		if id != "" {
			ref, ok := normRef(id)
			if !ok {
				return r, badInput("%q is not a case reference: %s. Usage: /experts take [EOD-1042] (without one: the most urgent new case).", id, hintRef)
			}
			r.ref = ref
		}
	case vAssign:
		var id, who string
		if typed {
			id, who = opt(c, "case", "ref"), opt(c, "user", "expert")
		} else if len(args) > 0 {
			id = args[0]
			if len(args) > 1 {
				who = args[1]
			}
		}
		if id == "" || who == "" {
			return r, badInput("Usage: /experts assign EOD-1042 @expert, where %s and %s.", hintRef, hintUser)
		}
		ref, ok := normRef(id)
		if !ok {
			return r, badInput("%q is not a case reference: %s.", id, hintRef)
		}
		u, ok := normUser(c.User.Platform, who)
		if !ok {
			return r, badInput("%q is not a user: %s.", who, hintUser)
		}
		r.ref, r.user = ref, u
	case vMoreInfo, vSample, vMoreTime, vConclude:
		if err := needRef("/experts " + verb + " EOD-1042 [text]"); err != nil {
			return r, err
		}
	case vNote:
		if err := needRef("/experts note EOD-1042 <text>"); err != nil {
			return r, err
		}
		if !r.hasText {
			return r, badInput("A note needs its text: /experts note %s \"what you found\". Notes stay on the desk; the requester never sees them.", r.ref)
		}
	case vSampleNotify:
	case vReport:
		if err := parseReport(c, args, typed, &r); err != nil {
			return r, err
		}
	case vExport, vVerify:
		if err := needRef("/experts " + verb + " EOD-1042"); err != nil {
			return r, err
		}
	case vIncidents:
		if err := parseIncidents(c, args, &r); err != nil {
			return r, err
		}
	case vUpload:
		if err := needRef("/experts upload EOD-1042"); err != nil {
			return r, err
		}
	case vOncall:
		action := ""
		if typed {
			action = opt(c, "action")
		} else if len(args) > 0 {
			action = args[0]
		}
		switch strings.ToLower(action) {
		case "", "show":
		case "take":
			r.take = true
		default:
			return r, badInput("%q is not an oncall action: /experts oncall shows who is on call, until when and who is next; /experts oncall take takes the pager until the next hand-over.", action)
		}
	case vWeb:
	case vCampaign:
		if err := parseCampaign(args, &r); err != nil {
			return r, err
		}
	case vInstallLink:
		if typed {
			r.org = strings.ToLower(opt(c, "org"))
		} else if len(args) > 0 {
			r.org = strings.ToLower(args[0])
		}
		if r.org == "" {
			return r, badInput("Which org? %s, e.g. /experts install-link contoso: a private link that installs threatdesk in that org's Slack workspace.", installOrgHint)
		}
	case vReload, vWorkspaces:
	default:
		return r, badInput("There is no /experts %s. Try /experts help.", verb)
	}
	return r, nil
}
