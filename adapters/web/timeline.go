package web

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/threatdesk/threatdesk/casework"
)

// entryView is one timeline entry on the case page.
type entryView struct {
	Seq              int
	At, What, Actor  string
	Hash, PrevHash   string
	Mark, MarkClass  string
	MarkTitle, Keyed string
}

// timelineView is the timeline and its verification.
type timelineView struct {
	Entries []entryView
	// Intact is the chain's verification; Text says it in a sentence.
	Intact bool
	Text   string
}

// timeline renders a record's timeline: each entry with what happened,
// who did it, its hash, and whether it verified.
func (h *Handler) timeline(rec *casework.Record) timelineView {
	ver := rec.Verification
	v := timelineView{Intact: ver.Intact}
	switch {
	case ver.Intact:
		v.Text = fmt.Sprintf("Chain intact: all %d entries verify, head %s.", ver.Entries, ver.Head)
	case ver.FailedSeq > 0:
		v.Text = fmt.Sprintf("Chain broken: entry %d does not match (%s); the entries after it cannot be trusted.", ver.FailedSeq, ver.Reason)
	default:
		v.Text = "The chain cannot be verified: " + ver.Reason + "."
	}
	for _, e := range rec.Timeline {
		ev := entryView{Seq: e.Seq, At: h.timeText(e.At), What: describe(e), Hash: e.Hash, PrevHash: e.PrevHash}
		ev.Actor = e.ActorName
		if ev.Actor == "" {
			ev.Actor = e.ActorID
		}
		if e.ActorRole != "" && e.ActorRole != casework.RoleSystem {
			ev.Actor += " (" + string(e.ActorRole) + ")"
		}
		if !e.Keyed {
			ev.Keyed = "unkeyed SHA-256 (written before the chain was keyed)"
		}
		switch {
		case ver.Intact:
			ev.Mark, ev.MarkClass, ev.MarkTitle = "✓", "ok", "verified"
		case ver.FailedSeq > 0 && e.Seq < ver.FailedSeq:
			ev.Mark, ev.MarkClass, ev.MarkTitle = "✓", "ok", "verified"
		case ver.FailedSeq == e.Seq:
			ev.Mark, ev.MarkClass, ev.MarkTitle = "✗", "bad", "does not match: "+ver.Reason
		default:
			ev.Mark, ev.MarkClass, ev.MarkTitle = "?", "unknown", "not verified"
		}
		v.Entries = append(v.Entries, ev)
	}
	return v
}

// describe says what a timeline entry records, from its detail. Unknown
// kinds (from a newer version) show their kind.
func describe(e casework.RecordEntry) string {
	if e.Withheld {
		return "Internal expert note (for experts only)"
	}
	switch e.Kind {
	case casework.EventOpened:
		var d casework.OpenedEvent
		if json.Unmarshal(e.Detail, &d) == nil {
			return fmt.Sprintf("Opened by %s: %s, %s priority", d.Requester.Name(), subjectText(d.Subject), d.Priority)
		}
	case casework.EventAssigned:
		var d casework.AssignedEvent
		if json.Unmarshal(e.Detail, &d) == nil {
			if d.Taken {
				return "Taken by " + d.Assignee.Name()
			}
			return "Assigned to " + d.Assignee.Name() + " by " + d.By.Name()
		}
	case casework.EventMessageAdded:
		var d casework.MessageAddedEvent
		if json.Unmarshal(e.Detail, &d) == nil {
			if d.Internal {
				return "Internal note by " + d.Author.Name()
			}
			return fmt.Sprintf("Message from %s (%s side)", d.Author.Name(), d.Side)
		}
	case casework.EventStatusChanged:
		var d casework.StatusChangedEvent
		if json.Unmarshal(e.Detail, &d) == nil {
			s := "Status " + statusLabel(d.From) + " → " + statusLabel(d.To)
			switch {
			case d.Reopened:
				s += " (reopened)"
			case d.Resumed:
				s += " (the requester answered)"
			}
			if d.Note != "" {
				s += ": " + d.Note
			}
			return s
		}
	case casework.EventSLAWarning, casework.EventSLABreach:
		var d casework.SLAEvent
		if json.Unmarshal(e.Detail, &d) == nil {
			what := "SLA warning"
			if e.Kind == casework.EventSLABreach {
				what = "SLA breach"
			}
			clock := "first response"
			if d.Clock == casework.ClockConclusion {
				clock = "conclusion"
			}
			return fmt.Sprintf("%s: %s at %s of %s", what, clock, durationText(time.Duration(d.ElapsedSeconds)*time.Second),
				durationText(time.Duration(d.TargetSeconds)*time.Second))
		}
	case casework.EventCreditsChanged:
		var d casework.CreditsChangedEvent
		if json.Unmarshal(e.Detail, &d) == nil {
			if d.Delta < 0 {
				return fmt.Sprintf("Used a credit (%d left)", d.Balance)
			}
			return fmt.Sprintf("Credit given back, %s (%d left)", d.Reason, d.Balance)
		}
	case casework.EventUploadLinkIssued:
		return "Upload link issued"
	case casework.EventSampleStored:
		var d casework.SampleStoredEvent
		if json.Unmarshal(e.Detail, &d) == nil {
			return fmt.Sprintf("Sample received: %s (%s), SHA-256 %s", d.Name, casework.FormatBytes(d.Size), d.SHA256)
		}
	case casework.EventDownloadLinkIssued:
		var d casework.DownloadLinkIssuedEvent
		if json.Unmarshal(e.Detail, &d) == nil {
			return fmt.Sprintf("Download link for %s issued to %s", d.Name, d.Expert.Name())
		}
	case casework.EventSampleDownloaded:
		var d casework.SampleDownloadedEvent
		if json.Unmarshal(e.Detail, &d) == nil {
			return fmt.Sprintf("Sample %s downloaded by %s", d.Name, d.Expert.Name())
		}
	case casework.EventSampleDeleted:
		var d casework.SampleDeletedEvent
		if json.Unmarshal(e.Detail, &d) == nil {
			return fmt.Sprintf("Sample %s deleted after the retention period", d.Name)
		}
	}
	return e.Kind
}
