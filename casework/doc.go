// Package casework is the domain core of experts on demand: cases opened by
// SOC analysts and worked by threat experts, their status machine, SLA clocks,
// the quarterly credits each org spends to open cases, the conversation, and
// an append-only timeline chained with HMACs keyed by THREATDESK_SECRET_KEY
// (see keying.go).
//
// It knows nothing of Slack or Discord: chat references are plain strings.
// Which chat messages carry a case's threads (its receipt and desk card) is
// the bot's record (bot_anchor), not casework's.
//
// # Changes and events
//
// Every change is one database transaction that locks the case row, checks
// the change, writes it, appends it to the case's timeline and appends its
// domain event to the outbox (internal/outbox) on the stream Stream(ref), so
// the bot receives a case's events in order after commit. Event kinds and
// payloads are in events.go (EventOpened, OpenedEvent, ...).
//
// # Statuses
//
//	new -> in_progress                       Take or Assign (expert, manager)
//	in_progress -> more_info_needed          waiting on the requester: clock paused
//	            -> file_sample_needed        waiting on the requester: clock paused
//	            -> needs_more_time           clock runs
//	            -> concluded                 with the expert's summary
//	more_info_needed, file_sample_needed -> in_progress   the requester answers (AddMessage)
//	concluded -> closed                      the requester, a manager, or after AutoCloseAfter
//	concluded, closed -> in_progress         reopen, within ReopenWindow: the requester or a manager
//	new .. needs_more_time -> withdrawn      the requester only; refunds the credit if nobody took it
//
// "The requester" is the person who asked (Case.Requester): an org member
// acting with RoleRequester on someone else's case may see it and add to its
// conversation, but not withdraw, close or reopen it.
//
// The full (from, to, role) table is transitions in transitions.go; Allowed
// reads it. A refused change is a *TransitionError whose message is one
// sentence ("EOD-12 is already concluded; use Reopen").
//
// # Origin
//
// OpenRequest.Origin, the chat channel the case was asked in, is stored with
// the case in the transaction that opens it (Case.Origin, OpenedEvent.Origin),
// so that a committed case never needs a second write before its receipt can
// be posted.
//
// # SLA
//
// Two clocks per case, with targets per priority (DefaultSLA): first
// response and conclusion. Both count time in new, in_progress and
// needs_more_time; they pause while waiting on the requester and stop once
// concluded, closed or withdrawn. SweepSLA (run every minute by Start, under
// a PostgreSQL advisory lock) emits a warning at WarnAt of a target and a
// breach at the target, each at most once per clock and case: the notice's
// flag column is set by a conditional UPDATE in the same transaction as its
// outbox event. SLA derives the figures from the stored status history.
//
// The same sweep escalates (escalate.go), the same way: a high-priority
// case still new Config.PageAfter after it opened gets EventPaged (once per
// case), and a case waiting on its requester for Config.RemindAfter gets
// EventReminded (once per wait; the clock stays paused). Whom to page or
// remind is the bot's to decide when it delivers the event.
//
// # Tenancy
//
// Every read takes a Viewer: one org (its members) or all orgs (experts and
// managers). A case of another org is reported exactly as a missing one
// (ErrNotFound). Writes take an Actor, whose role sets both what it may do
// and what it may see.
//
// # Managers and auditors
//
// The reads behind "/experts report", the weekly digest, "cases search",
// "export" and "verify", each scoped by its Viewer like List and Get (a
// member: their own org; experts and managers: every org):
//
//	// /experts report [org] [week|month|quarter]
//	p, err := casework.ParsePeriod(word)                       // "" is the quarter
//	rep, err := svc.Report(ctx, v, casework.ReportRequest{Org: org, Period: p, Location: tz})
//	// rep.Orgs (one per org, zeros included) and rep.Total; its JSON feeds the web report.
//
//	// Weekly digest: at reports.digest.when, on every replica:
//	queued, err := svc.QueueDigest(ctx, tz, nil) // true on one call per week, with EventDigest in the outbox
//	// and in the delivery worker, for EventDigest (payload DigestEvent):
//	req, err := ev.Request()                // last week, whole, in the event's zone
//	rep, err := svc.Report(ctx, casework.AllOrgs(), req)
//
//	// /experts cases search <words | hash | host | @user | EOD-n>; More: Cursor = page.Next.
//	page, err := svc.Search(ctx, v, casework.SearchQuery{Text: text, Internal: isExpert, Cursor: cursor})
//
//	// /experts cases ...: More button: PageToken = page.Next ("and page.Remaining more").
//	page, err := svc.List(ctx, v, casework.ListFilter{Statuses: casework.OpenStatuses(), Limit: 10, PageToken: token})
//
//	// /experts export EOD-n: two files, uploaded privately to the caller.
//	rec, err := svc.Export(ctx, v, ref, isExpert)
//	md := rec.Markdown()                    // named rec.FileName("md")
//	js, err := rec.JSON()                   // named rec.FileName("json")
//
//	// /experts verify EOD-n
//	res, err := svc.Verify(ctx, v, ref)     // res.String(): "EOD-12: intact, 7 entries, head 3f2a…"
//
// Report reads one SQL query per figure family (cases opened, clocks and
// SLA, credits, notifications); what each figure means is at the top of
// report.go. Notification figures come from Config.Notifications, by
// default HuntingNotifications, which reads hunting's incident table
// read-only. Internal expert notes never reach an org viewer: Search does
// not match them and Export leaves them out (asking for them as an org
// viewer is refused with ErrInvalid).
//
// # File samples
//
// A requester sends a file to the experts through a one-time upload link
// (IssueUploadLink; adapters/web serves the page and its multipart post,
// which curl uses too, and calls StoreSample with the token), or by posting
// it in a case thread (the chat adapter fetches it and calls StoreSample
// with Source thread). StoreSample streams the bytes: it hashes them (MD5,
// SHA-1, SHA-256) while reading, refuses more than Config.SampleMaxBytes
// (*TooLargeError), an empty file (ErrEmptySample) and a body that breaks
// off (*ReadError), and writes them sealed with AES-256-GCM in
// SampleChunkSize chunks (the sample id, chunk index and a last-chunk flag
// as associated data), in one transaction with the timeline entry, the
// outbox event EventSampleStored that announces the sample to both sides,
// the link marked used and, when the case waited on the requester, the
// change back to in_progress that restarts the SLA clock. Nothing of a
// refused or interrupted upload is stored. Experts download through a
// short-lived link (IssueDownloadLink, then OpenSample), each download on
// the timeline; SweepSamples (run by Start every 15 minutes) deletes the
// bytes Config.SampleRetention after the case closed, recorded too. Link
// tokens are 32 random bytes; only their SHA-256 is stored, and they carry
// no case data. A refused link is a *LinkError.
//
// How the chat side calls it (links is adapters/web's Links, from cmd):
//
//	// The case went to file_sample_needed (EventStatusChanged, To
//	// file_sample_needed): one link per event, however often it is
//	// delivered (the token kept sealed under the secret key to give again):
//	link, err := svc.IssueUploadLinkOnce(ctx, "EOD-12", casework.System(), "outbox:4711")
//	// The requester typed "/experts upload EOD-12" (a fresh link):
//	link, err := svc.IssueUploadLink(ctx, "EOD-12", requesterActor)
//	text := "Send the file here: " + links.Upload(link.Token) + " (one file, until " +
//		link.ExpiresAt.Format(time.RFC1123) + "). " + links.LocalNote()
//
//	// A file posted in a case thread (Slack message files with files:read;
//	// Discord attachments), streamed from the platform:
//	smp, err := svc.StoreSample(ctx, casework.Upload{Ref: "EOD-12", Source: casework.SourceThread,
//		Actor: actor, Chat: casework.ChatRef{Platform: "slack", Workspace: team, Channel: ch, Message: ts},
//		FileID: file.ID, Name: file.Name, Body: resp.Body})
//	// smp.Repeated: a redelivered event; nothing new happened.
//
//	// EventSampleStored (payload SampleStoredEvent): announce in both
//	// threads by Name, FormatBytes(Size) and SHA256; on the desk also
//	// MatchText when set. Never attach or link the file itself.
//
//	// The desk card's Download sample button (one per smp of
//	// svc.Samples(ctx, casework.AllOrgs(), ref) with DeletedAt nil):
//	dl, err := svc.IssueDownloadLink(ctx, "EOD-12", sampleID, expertActor)
//	// send links.Download(dl.Token) to that expert only (Slack ephemeral,
//	// Discord ephemeral follow-up), with link unfurling off.
//
// # Metrics
//
// Cases opened, credits used and given back, and SLA warnings and breaches
// are counted with an org label bounded by Config.Orgs (any other org is
// OtherOrgLabel), so that dashboards show the report's figures per org.
package casework
