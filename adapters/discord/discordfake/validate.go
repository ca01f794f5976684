package discordfake

import (
	"encoding/json"
	"fmt"
	"regexp"
	"strings"
	"unicode/utf8"
)

// Discord's limits the fake enforces, in runes.
// https://discord.com/developers/docs/resources/message#embed-object-embed-limits
// https://discord.com/developers/docs/components/reference
const (
	maxContent       = 2000
	maxEmbeds        = 10
	maxEmbedTitle    = 256
	maxEmbedDesc     = 4096
	maxEmbedFields   = 25
	maxFieldName     = 256
	maxFieldValue    = 1024
	maxFooter        = 2048
	maxAuthorName    = 256
	maxEmbedTotal    = 6000
	maxRows          = 5
	maxButtonsPerRow = 5
	maxCustomID      = 100
	maxButtonLabel   = 80
	maxModalTitle    = 45
	maxModalRows     = 5
	maxInputLabel    = 45
	maxPlaceholder   = 100
	maxInputValue    = 4000
	maxNonce         = 25
	maxThreadName    = 100
)

// MessageBody is a message create/edit body, an interaction message
// response's data or a webhook followup as the fake reads it.
type MessageBody struct {
	Content         *string          `json:"content"`
	Embeds          []Embed          `json:"embeds"`
	Components      []Component      `json:"components"`
	AllowedMentions *AllowedMentions `json:"allowed_mentions"`
	Flags           int              `json:"flags"`
	Nonce           json.RawMessage  `json:"nonce"`
	EnforceNonce    bool             `json:"enforce_nonce"`
}

// AllowedMentions as sent; Parse is nil when the key was absent or null.
type AllowedMentions struct {
	Parse *[]string `json:"parse"`
	Users []string  `json:"users"`
	Roles []string  `json:"roles"`
}

// Embed is a rich embed.
type Embed struct {
	Title       string  `json:"title,omitempty"`
	Description string  `json:"description,omitempty"`
	Color       int     `json:"color,omitempty"`
	Fields      []Field `json:"fields,omitempty"`
	Footer      *struct {
		Text string `json:"text"`
	} `json:"footer,omitempty"`
	Author *struct {
		Name string `json:"name"`
	} `json:"author,omitempty"`
}

// Field is an embed field.
type Field struct {
	Name   string `json:"name"`
	Value  string `json:"value"`
	Inline bool   `json:"inline,omitempty"`
}

// Component is an action row, a button, a select, a text input or a
// modal's label (type 18, around one Component).
type Component struct {
	Type        int         `json:"type"`
	Components  []Component `json:"components,omitempty"`
	Component   *Component  `json:"component,omitempty"`
	Description string      `json:"description,omitempty"`
	MinValues   *int        `json:"min_values,omitempty"`
	MaxValues   *int        `json:"max_values,omitempty"`
	CustomID    string      `json:"custom_id,omitempty"`
	Label       string      `json:"label,omitempty"`
	Style       int         `json:"style,omitempty"`
	URL         string      `json:"url,omitempty"`
	Placeholder string      `json:"placeholder,omitempty"`
	Value       string      `json:"value,omitempty"`
	MinLength   *int        `json:"min_length,omitempty"`
	MaxLength   *int        `json:"max_length,omitempty"`
	Required    *bool       `json:"required,omitempty"`
	Options     []any       `json:"options,omitempty"`
}

func runes(s string) int { return utf8.RuneCountInString(s) }

// validateMessage returns every way body breaks Discord's rules; edit
// relaxes "must have content".
func validateMessage(b MessageBody, edit bool) []string {
	var v []string
	bad := func(f string, args ...any) { v = append(v, fmt.Sprintf(f, args...)) }
	if b.AllowedMentions == nil || b.AllowedMentions.Parse == nil {
		bad("allowed_mentions with an empty parse list is required (user text could ping @everyone)")
	} else if len(*b.AllowedMentions.Parse) != 0 {
		bad("allowed_mentions.parse must be empty, got %v", *b.AllowedMentions.Parse)
	}
	v = append(v, checkAllowedUsers(b)...)
	content := ""
	if b.Content != nil {
		content = *b.Content
	}
	if n := runes(content); n > maxContent {
		bad("content is %d characters, limit %d", n, maxContent)
	}
	if !edit && content == "" && len(b.Embeds) == 0 && len(b.Components) == 0 {
		bad("cannot send an empty message")
	}
	if len(b.Embeds) > maxEmbeds {
		bad("%d embeds, limit %d", len(b.Embeds), maxEmbeds)
	}
	total := 0
	for i, e := range b.Embeds {
		if n := runes(e.Title); n > maxEmbedTitle {
			bad("embed %d title is %d characters, limit %d", i, n, maxEmbedTitle)
		}
		if n := runes(e.Description); n > maxEmbedDesc {
			bad("embed %d description is %d characters, limit %d", i, n, maxEmbedDesc)
		}
		if len(e.Fields) > maxEmbedFields {
			bad("embed %d has %d fields, limit %d", i, len(e.Fields), maxEmbedFields)
		}
		total += runes(e.Title) + runes(e.Description)
		for j, f := range e.Fields {
			if n := runes(f.Name); n > maxFieldName || n == 0 {
				bad("embed %d field %d name is %d characters, must be 1..%d", i, j, n, maxFieldName)
			}
			if n := runes(f.Value); n > maxFieldValue || n == 0 {
				bad("embed %d field %d value is %d characters, must be 1..%d", i, j, n, maxFieldValue)
			}
			total += runes(f.Name) + runes(f.Value)
		}
		if e.Footer != nil {
			if n := runes(e.Footer.Text); n > maxFooter {
				bad("embed %d footer is %d characters, limit %d", i, n, maxFooter)
			}
			total += runes(e.Footer.Text)
		}
		if e.Author != nil {
			if n := runes(e.Author.Name); n > maxAuthorName {
				bad("embed %d author is %d characters, limit %d", i, n, maxAuthorName)
			}
			total += runes(e.Author.Name)
		}
	}
	if total > maxEmbedTotal {
		bad("embeds total %d characters, limit %d", total, maxEmbedTotal)
	}
	v = append(v, validateComponents(b.Components)...)
	if len(b.Nonce) > 0 {
		var s string
		if json.Unmarshal(b.Nonce, &s) == nil && runes(s) > maxNonce {
			bad("nonce is %d characters, limit %d", runes(s), maxNonce)
		}
	}
	return v
}

// validateComponents checks message components (action rows of buttons or
// one select).
func validateComponents(rows []Component) []string {
	var v []string
	bad := func(f string, args ...any) { v = append(v, fmt.Sprintf(f, args...)) }
	if len(rows) > maxRows {
		bad("%d action rows, limit %d", len(rows), maxRows)
	}
	seen := map[string]bool{}
	for i, r := range rows {
		if r.Type != 1 {
			bad("top-level component %d has type %d, want an action row (1)", i, r.Type)
			continue
		}
		if len(r.Components) == 0 {
			bad("action row %d is empty", i)
		}
		buttons, selects := 0, 0
		for _, c := range r.Components {
			switch c.Type {
			case 2:
				buttons++
				if n := runes(c.Label); n > maxButtonLabel {
					bad("button label %q is %d characters, limit %d", c.Label, n, maxButtonLabel)
				}
				if c.Style == 5 {
					if c.URL == "" || c.CustomID != "" {
						bad("link button needs a url and no custom_id")
					}
					continue
				}
			case 3, 5, 6, 7, 8:
				selects++
				v = append(v, validateSelect(c)...)
			default:
				bad("component type %d is not allowed in a message action row", c.Type)
				continue
			}
			if n := runes(c.CustomID); n == 0 || n > maxCustomID {
				bad("custom_id %q is %d characters, must be 1..%d", c.CustomID, n, maxCustomID)
			}
			if seen[c.CustomID] {
				bad("custom_id %q is used twice in one message", c.CustomID)
			}
			seen[c.CustomID] = true
		}
		if buttons > maxButtonsPerRow {
			bad("action row %d has %d buttons, limit %d", i, buttons, maxButtonsPerRow)
		}
		if selects > 0 && (selects > 1 || buttons > 0) {
			bad("action row %d mixes a select with other components", i)
		}
	}
	return v
}

// ModalBody is a modal interaction response's data.
type ModalBody struct {
	CustomID   string      `json:"custom_id"`
	Title      string      `json:"title"`
	Components []Component `json:"components"`
}

func validateModal(m ModalBody) []string {
	var v []string
	bad := func(f string, args ...any) { v = append(v, fmt.Sprintf(f, args...)) }
	if n := runes(m.CustomID); n == 0 || n > maxCustomID {
		bad("modal custom_id is %d characters, must be 1..%d", n, maxCustomID)
	}
	if n := runes(m.Title); n == 0 || n > maxModalTitle {
		bad("modal title is %d characters, must be 1..%d", n, maxModalTitle)
	}
	if len(m.Components) == 0 || len(m.Components) > maxModalRows {
		bad("modal has %d rows, must be 1..%d", len(m.Components), maxModalRows)
	}
	seen := map[string]bool{}
	for i, r := range m.Components {
		var t Component
		switch {
		case r.Type == 1 && len(r.Components) == 1 && r.Components[0].Type == 4:
			t = r.Components[0]
			if n := runes(t.Label); n == 0 || n > maxInputLabel {
				bad("text input label is %d characters, must be 1..%d", n, maxInputLabel)
			}
		case r.Type == typeLabel && r.Component != nil && (r.Component.Type == 4 || r.Component.Type == 3):
			if n := runes(r.Label); n == 0 || n > maxInputLabel {
				bad("label %d is %d characters, must be 1..%d", i, n, maxInputLabel)
			}
			if n := runes(r.Description); n > maxLabelDesc {
				bad("label %d description is %d characters, limit %d", i, n, maxLabelDesc)
			}
			t = *r.Component
			if t.Label != "" {
				bad("the input of label %d has a label of its own: the Label carries it", i)
			}
		default:
			bad("modal component %d must be an action row holding one text input, or a label (18) around a text input or a string select", i)
			continue
		}
		if n := runes(t.CustomID); n == 0 || n > maxCustomID || seen[t.CustomID] {
			bad("input custom_id %q must be unique and 1..%d characters", t.CustomID, maxCustomID)
		}
		seen[t.CustomID] = true
		if t.Type == 3 {
			v = append(v, validateSelect(t)...)
			continue
		}
		if t.Style != 1 && t.Style != 2 {
			bad("text input style %d, must be 1 or 2", t.Style)
		}
		if n := runes(t.Placeholder); n > maxPlaceholder {
			bad("placeholder is %d characters, limit %d", n, maxPlaceholder)
		}
		if n := runes(t.Value); n > maxInputValue {
			bad("value is %d characters, limit %d", n, maxInputValue)
		}
		if t.MinLength != nil && (*t.MinLength < 0 || *t.MinLength > maxInputValue) {
			bad("min_length %d out of 0..%d", *t.MinLength, maxInputValue)
		}
		if t.MaxLength != nil && (*t.MaxLength < 1 || *t.MaxLength > maxInputValue) {
			bad("max_length %d out of 1..%d", *t.MaxLength, maxInputValue)
		}
		// The pre-filled value is held to the input's own max_length too
		// (https://discord.com/developers/docs/components/reference#text-input).
		if t.MaxLength != nil && runes(t.Value) > *t.MaxLength {
			bad("value is %d characters, longer than max_length %d", runes(t.Value), *t.MaxLength)
		}
	}
	return v
}

// Command is an application command as registered.
type Command struct {
	ID          string          `json:"id,omitempty"`
	Name        string          `json:"name"`
	Description string          `json:"description"`
	Type        int             `json:"type,omitempty"`
	Options     []CommandOption `json:"options,omitempty"`
}

// CommandOption is an option or subcommand.
type CommandOption struct {
	Type        int             `json:"type"`
	Name        string          `json:"name"`
	Description string          `json:"description"`
	Required    bool            `json:"required,omitempty"`
	Options     []CommandOption `json:"options,omitempty"`
	Choices     []struct {
		Name  string `json:"name"`
		Value any    `json:"value"`
	} `json:"choices,omitempty"`
	MinLength    *int `json:"min_length,omitempty"`
	MaxLength    *int `json:"max_length,omitempty"`
	Autocomplete bool `json:"autocomplete,omitempty"`
}

func validateCommands(cmds []Command) []string {
	var v []string
	bad := func(f string, args ...any) { v = append(v, fmt.Sprintf(f, args...)) }
	name := regexp.MustCompile(`^[-_\p{Ll}\p{N}]{1,32}$`)
	if len(cmds) > 100 {
		bad("%d commands, limit 100", len(cmds))
	}
	var checkOpts func(path string, opts []CommandOption, depth int) int
	checkOpts = func(path string, opts []CommandOption, depth int) int {
		total := 0
		if len(opts) > 25 {
			bad("%s has %d options, limit 25", path, len(opts))
		}
		optional := false
		seen, subs, values := map[string]bool{}, 0, 0
		for _, o := range opts {
			if o.Type == 1 || o.Type == 2 {
				subs++
			} else {
				values++
			}
			if seen[o.Name] {
				bad("%q: two options named %q", path, o.Name)
			}
			seen[o.Name] = true
			if o.Type == 2 && len(o.Options) == 0 {
				bad("%q: a subcommand group needs subcommands", path+" "+o.Name)
			}
			for _, so := range o.Options {
				if o.Type == 2 && so.Type != 1 {
					bad("%q: a subcommand group holds subcommands only", path+" "+o.Name)
				}
			}
			p := path + " " + o.Name
			total += runes(o.Name) + runes(o.Description)
			if !name.MatchString(o.Name) {
				bad("option name %q is not a valid lowercase name", p)
			}
			if n := runes(o.Description); n == 0 || n > 100 {
				bad("option %q description is %d characters, must be 1..100", p, n)
			}
			switch o.Type {
			case 1, 2:
				if depth >= 2 || (o.Type == 2 && depth >= 1) {
					bad("%q: subcommands nest too deep", p)
				}
				total += checkOpts(p, o.Options, depth+1)
			default:
				if o.Required && optional {
					bad("%q: required options must come before optional ones", p)
				}
				if !o.Required {
					optional = true
				}
			}
			if o.Type == 3 {
				if o.MinLength != nil && (*o.MinLength < 0 || *o.MinLength > 6000) {
					bad("%q min_length %d out of 0..6000", p, *o.MinLength)
				}
				if o.MaxLength != nil && (*o.MaxLength < 1 || *o.MaxLength > 6000) {
					bad("%q max_length %d out of 1..6000", p, *o.MaxLength)
				}
			}
			if len(o.Choices) > 25 {
				bad("%q has %d choices, limit 25", p, len(o.Choices))
			}
			if len(o.Choices) > 0 && o.Autocomplete {
				bad("%q: choices and autocomplete are exclusive", p)
			}
			for _, c := range o.Choices {
				total += runes(c.Name) + runes(fmt.Sprint(c.Value))
			}
		}
		if subs > 0 && values > 0 {
			bad("%q mixes subcommands with options", path)
		}
		return total
	}
	names := map[string]bool{}
	for _, c := range cmds {
		// A name is one command's per type (a slash command and a user
		// command may share one).
		if k := fmt.Sprintf("%d %s", max(c.Type, 1), c.Name); names[k] {
			bad("command name %q twice (40041: an application command with that name already exists)", c.Name)
		} else {
			names[k] = true
		}
		if !name.MatchString(c.Name) {
			bad("command name %q is not a valid lowercase name", c.Name)
		}
		if n := runes(c.Description); n == 0 || n > 100 {
			bad("command %q description is %d characters, must be 1..100", c.Name, n)
		}
		if t := runes(c.Name) + runes(c.Description) + checkOpts(c.Name, c.Options, 0); t > 4000 {
			bad("command %q totals %d characters, limit 4000", c.Name, t)
		}
	}
	return v
}

// pings reports what a message would ping, given its allowed_mentions.
// Without allowed_mentions Discord parses everything.
func pings(b MessageBody) []string {
	text := ""
	if b.Content != nil {
		text = *b.Content
	}
	// Mentions inside embeds never ping on Discord: only content counts.
	parse := []string{"everyone", "users", "roles"}
	if b.AllowedMentions != nil && b.AllowedMentions.Parse != nil {
		parse = *b.AllowedMentions.Parse
	}
	allowed := map[string]bool{}
	for _, p := range parse {
		allowed[p] = true
	}
	var out []string
	if allowed["everyone"] {
		for _, m := range []string{"@everyone", "@here"} {
			if strings.Contains(text, m) {
				out = append(out, m)
			}
		}
	}
	if allowed["users"] && regexp.MustCompile(`<@!?[0-9]+>`).MatchString(text) {
		out = append(out, "user")
	}
	if allowed["roles"] && regexp.MustCompile(`<@&[0-9]+>`).MatchString(text) {
		out = append(out, "role")
	}
	return out
}
