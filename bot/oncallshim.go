package bot

import (
	"context"
	"encoding/json"
	"errors"
	"time"

	"github.com/threatdesk/threatdesk/oncall"
)

// OncallRota adapts oncall.Service to the OnCall the bot consumes.
type OncallRota struct {
	svc *oncall.Service
}

var _ OnCall = (*OncallRota)(nil)

// NewOncallRota wraps svc.
func NewOncallRota(svc *oncall.Service) *OncallRota { return &OncallRota{svc: svc} }

func member(m oncall.Member) OnCallMember {
	return OnCallMember{Platform: Platform(m.Platform), ID: m.UserID}
}

// Current implements OnCall.
func (r *OncallRota) Current(ctx context.Context, now time.Time) (OnCallNow, bool, error) {
	cur, err := r.svc.Current(ctx, now)
	if errors.Is(err, oncall.ErrNoRotation) {
		return OnCallNow{}, false, nil
	}
	if err != nil {
		return OnCallNow{}, false, err
	}
	return OnCallNow{Member: member(cur.Member), Until: cur.Until, Next: member(cur.Next),
		Scheduled: member(cur.Scheduled), Taken: cur.Take != nil}, true, nil
}

// WhoToPage implements OnCall.
func (r *OncallRota) WhoToPage(ctx context.Context, opened, now time.Time) (OnCallPage, bool, error) {
	p, err := r.svc.PageFor(ctx, opened, now)
	if errors.Is(err, oncall.ErrNoRotation) {
		return OnCallPage{}, false, nil
	}
	if err != nil {
		return OnCallPage{}, false, err
	}
	return OnCallPage{Member: member(p.Member), Holder: p.Holder}, !p.Member.IsZero(), nil
}

// Take implements OnCall: the rotation's refusals become sentences for the
// expert who asked.
func (r *OncallRota) Take(ctx context.Context, m OnCallMember, now time.Time) (OnCallNow, error) {
	cur, err := r.svc.Take(ctx, oncall.Member{Platform: string(m.Platform), UserID: m.ID}, now)
	var notIn *oncall.NotInRotationError
	var already *oncall.AlreadyOnCallError
	switch {
	case errors.Is(err, oncall.ErrNoRotation):
		return OnCallNow{}, &Refusal{Msg: noRotation, Err: err}
	case errors.As(err, &notIn):
		return OnCallNow{}, &Refusal{Msg: "You are not on the on-call rotation, so you cannot take the pager: an admin adds experts to oncall.rotation in the config file.", Err: err}
	case errors.As(err, &already):
		return OnCallNow{}, &Refusal{Msg: "You already hold the pager, until " + zoned(already.Until, r.svc.Schedule().Location) + ".", Err: err}
	case err != nil:
		return OnCallNow{}, err
	}
	return OnCallNow{Member: member(cur.Member), Until: cur.Until, Next: member(cur.Next),
		Scheduled: member(cur.Scheduled), Taken: cur.Take != nil}, nil
}

// DecodeEvent implements OnCall.
func (r *OncallRota) DecodeEvent(kind string, payload json.RawMessage) (PagerTaken, bool, error) {
	if kind != oncall.EventTaken {
		return PagerTaken{}, false, nil
	}
	var ev oncall.TakenEvent
	if err := json.Unmarshal(payload, &ev); err != nil {
		return PagerTaken{}, true, err
	}
	return PagerTaken{Member: member(ev.Member), Displaced: member(ev.Displaced), Next: member(ev.Next), Until: ev.Until}, true, nil
}
