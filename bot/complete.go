package bot

import (
	"context"
	"strings"
	"time"
)

// Choice is one suggestion while a user types an option.
type Choice struct {
	// Name is what the user sees; Value is what the option receives.
	Name, Value string
}

// Completer suggests case references while a user types (Discord
// autocomplete). Adapters use it when their Handler implements it.
type Completer interface {
	CompleteCases(ctx context.Context, u User, channel, typed string) []Choice
}

var _ Completer = (*Bot)(nil)

// Limits of a suggestion list (Discord: 25 choices, names of 100 characters,
// https://discord.com/developers/docs/interactions/application-commands#autocomplete).
const (
	maxChoices    = 25
	maxChoiceName = 100
	completeLimit = 200
	completeTime  = 1500 * time.Millisecond
)

// CompleteCases suggests up to 25 references of cases the user may see
// (their org's, or all for experts and managers), open ones first by
// urgency, whose reference contains what was typed ("12", "eod-12").
// Nothing is suggested to someone who may see no case.
func (b *Bot) CompleteCases(ctx context.Context, u User, channel, typed string) []Choice {
	b = b.current()
	w := b.identify(u, channel, nil)
	s, ok := w.scope()
	if !ok {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, completeTime)
	defer cancel()
	l, err := b.cases.List(ctx, s, CaseFilter{Which: "open", Limit: completeLimit})
	if err != nil {
		b.log.Warn("case suggestions", "err", err)
		return nil
	}
	want := strings.ToUpper(strings.TrimSpace(typed))
	out := []Choice{}
	for _, c := range l.Cases {
		if want != "" && !strings.Contains(c.Ref, want) {
			continue
		}
		name := c.Ref + " · " + c.Status.label()
		if s.All {
			name += " · " + b.orgName(c.Org)
		}
		if q := strings.Join(strings.Fields(c.Question), " "); q != "" {
			name += " · " + q
		}
		out = append(out, Choice{Name: cut(name, maxChoiceName), Value: c.Ref})
		if len(out) == maxChoices {
			break
		}
	}
	return out
}
