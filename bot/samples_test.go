package bot_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	. "github.com/threatdesk/threatdesk/bot" //nolint:revive // the tests read like the package's own
	"github.com/threatdesk/threatdesk/bot/bottest"
	"github.com/threatdesk/threatdesk/casework"
	"github.com/threatdesk/threatdesk/internal/pgtest"
)

// testLinks builds sample URLs as adapters/web's Links does, on a public
// base URL.
type testLinks struct{}

const linkBase = "https://threatdesk.example.com"

func (testLinks) Upload(token string) string { return linkBase + "/samples/u/" + url.PathEscape(token) }
func (testLinks) Download(token string) string {
	return linkBase + "/samples/d/" + url.PathEscape(token)
}
func (testLinks) LocalNote() string { return "" }

// sampleSetup is setup with file samples on, casework configured by cw.
func sampleSetup(t *testing.T, cw casework.Config, opts ...option) *fixture {
	t.Helper()
	return sampleSetupOn(t, pgtest.New(t), cw, opts...)
}

func sampleSetupOn(t *testing.T, db *pgxpool.Pool, cw casework.Config, opts ...option) *fixture {
	t.Helper()
	f := setupWith(t, db, false, nil, cw, opts...)
	require.NoError(t, f.bot.UseSamples(NewCaseworkSamples(f.cw), testLinks{}))
	ctx, cancel := context.WithCancel(context.Background())
	require.NoError(t, f.bot.Start(ctx))
	t.Cleanup(cancel)
	return f
}

const fileHash = "4b6f1c2d8a9e0f1a2b3c4d5e6f708192a3b4c5d6e7f8091a2b3c4d5e6f708192"

// fileCase opens a Contoso case about fileHash and has expert1 take it.
func (f *fixture) fileCase(t *testing.T) (ref string, receipt, desk Ref) {
	t.Helper()
	ref, r, d := f.openCase(t, "file "+fileHash+" is this invoice malware?")
	_, m := f.run(t, Slack, expert1, deskChannel, "take "+ref)
	require.Contains(t, plain(m), "You have "+ref)
	posted(t, f.slack, contosoSOC, &r.Ref, "took "+ref)
	posted(t, f.slack, deskChannel, &d.Ref, "took "+ref)
	f.settledOutbox(t)
	return ref, r.Ref, d.Ref
}

// settledOutbox waits until no outbox row is pending.
func (f *fixture) settledOutbox(t *testing.T) {
	t.Helper()
	f.waitFor(t, "the outbox drained", func() bool {
		return f.count(t, `SELECT count(*) FROM outbox WHERE delivered_at IS NULL AND dead_at IS NULL`) == 0
	})
}

func (f *fixture) count(t *testing.T, sql string, args ...any) int {
	t.Helper()
	var n int
	require.NoError(t, f.db.QueryRow(context.Background(), sql, args...).Scan(&n))
	return n
}

// timelineCount counts a case's timeline entries of kind.
func (f *fixture) timelineCount(t *testing.T, ref, kind string) int {
	t.Helper()
	tl, err := f.cw.Timeline(context.Background(), casework.AllOrgs(), ref)
	require.NoError(t, err)
	n := 0
	for _, e := range tl {
		if e.Kind == kind {
			n++
		}
	}
	return n
}

// linkIn returns the URL of the first link of m under prefix.
func linkIn(t *testing.T, m Message, prefix string) string {
	t.Helper()
	for _, l := range m.Text {
		for _, s := range l {
			if strings.HasPrefix(s.Link, prefix) {
				require.False(t, s.Untrusted)
				return s.Link
			}
		}
	}
	t.Fatalf("no link under %s in %q", prefix, plain(m))
	return ""
}

// everything is the text and links of every message the adapters were given.
func everything(adapters ...*bottest.Adapter) string {
	var sb strings.Builder
	for _, a := range adapters {
		for _, c := range a.Calls() {
			sb.WriteString(plain(c.Message))
			for _, l := range c.Message.Text {
				for _, s := range l {
					sb.WriteString(" " + s.Link)
				}
			}
			sb.WriteString("\n")
		}
	}
	return sb.String()
}

// TestUploadLinkWhenSampleNeeded: the expert asks for a file sample; the
// requester's thread gets a one-time upload link, the desk is told without
// the link, and a delivery retried after a failure, re-leased or rendered
// by another replica posts the same link, issued once.
func TestUploadLinkWhenSampleNeeded(t *testing.T) {
	t.Parallel()
	f := sampleSetup(t, casework.Config{})
	ctx := context.Background()
	ref, receipt, desk := f.fileCase(t)

	// The desk note (the fourth part) fails once: the row is rendered again.
	f.slack.Fail(nil, nil, nil, bottest.ServerError())
	_, m := f.run(t, Slack, expert1, deskChannel, "sample "+ref+" the invoice.exe from the mail")
	require.Contains(t, plain(m), "file sample needed")
	note := posted(t, f.slack, contosoSOC, &receipt, "upload a file sample for "+ref)
	deskNote := posted(t, f.slack, deskChannel, &desk, "The requester got a one-time upload link")
	f.settledOutbox(t)

	up := linkIn(t, note.Message, linkBase+"/samples/u/")
	token := strings.TrimPrefix(up, linkBase+"/samples/u/")
	require.Contains(t, plain(note.Message), "curl -F file=@sample.bin "+up)
	require.Contains(t, plain(note.Message), "the invoice.exe from the mail", "the expert's words are shown")
	info, err := f.cw.UploadLinkInfo(ctx, token)
	require.NoError(t, err, "the link works")
	require.Equal(t, ref, info.Ref)
	require.NotContains(t, plain(deskNote.Message), token)

	var id int64
	var attempts int
	require.NoError(t, f.db.QueryRow(ctx, `SELECT id, attempts FROM outbox WHERE stream = $1 AND kind = $2 AND payload->>'to' = $3`,
		casework.Stream(ref), casework.EventStatusChanged, string(casework.StatusFileSampleNeeded)).Scan(&id, &attempts))
	require.GreaterOrEqual(t, attempts, 2, "the row was retried")

	// The same row, delivered again here and by another replica.
	require.NoError(t, f.bot.DeliverRow(ctx, id))
	other := sampleSetupOn(t, f.db, casework.Config{Key: f.cw.Config().Key})
	require.NoError(t, other.bot.DeliverRow(ctx, id))

	require.Equal(t, 1, f.count(t, `SELECT count(*) FROM case_upload_links`), "one link issued")
	require.Equal(t, 1, f.timelineCount(t, ref, casework.EventUploadLinkIssued))
	links := f.slack.Count(bottest.OpPost, func(c bottest.Call) bool {
		return strings.Contains(plain(c.Message), "upload a file sample for")
	})
	require.Equal(t, 1, links, "the link is posted once")
	require.Empty(t, other.slack.Calls(), "the other replica found every part sent")
	// Neither the desk nor the outbox ever has the token.
	deskCalls := f.slack.Find(bottest.OpPost, func(c bottest.Call) bool { return c.Dest.Channel == deskChannel })
	for _, c := range deskCalls {
		require.NotContains(t, fmt.Sprint(c.Message), token)
	}
	require.Zero(t, f.count(t, `SELECT count(*) FROM outbox WHERE payload::text LIKE '%' || $1 || '%'`, token))
}

// TestUploadCommand: "/experts upload" gives a member of the case's org a
// fresh link privately while the case is open; anyone else gets what an
// unknown case gets.
func TestUploadCommand(t *testing.T) {
	t.Parallel()
	f := sampleSetup(t, casework.Config{})
	ctx := context.Background()
	ref, _, _ := f.fileCase(t)

	ask := func(p Platform, user, channel, text string) bottest.Response {
		t.Helper()
		c, r := f.command(p, user, channel, text)
		ack := f.bot.HandleCommand(ctx, c)
		if ack.Message != nil {
			return bottest.Response{Message: *ack.Message, Private: ack.Private}
		}
		got, ok := r.Wait(tenSeconds)
		require.True(t, ok, "no answer to %q", text)
		return got
	}

	first := ask(Slack, analyst, contosoSOC, "upload "+ref)
	require.True(t, first.Private, "the link is given privately")
	up1 := linkIn(t, first.Message, linkBase+"/samples/u/")
	second := ask(Slack, analyst, contosoSOC2, "upload "+strings.ToLower(ref))
	up2 := linkIn(t, second.Message, linkBase+"/samples/u/")
	require.NotEqual(t, up1, up2, "a fresh link each time")
	for _, u := range []string{up1, up2} {
		_, err := f.cw.UploadLinkInfo(ctx, strings.TrimPrefix(u, linkBase+"/samples/u/"))
		require.NoError(t, err)
	}

	// Another org's member: the very answer an unknown case gets.
	foreign := ask(Discord, fabAnalyst, fabSOC, "upload "+ref)
	unknown := ask(Discord, fabAnalyst, fabSOC, "upload EOD-999")
	require.Equal(t, plain(unknown.Message), plain(foreign.Message))
	require.Contains(t, plain(foreign.Message), "Not found")
	require.Equal(t, plain(ask(Slack, analyst, contosoSOC, "upload EOD-999").Message), plain(unknown.Message))
	// Not a member of any org here; bad input.
	require.Contains(t, plain(ask(Slack, expert1, deskChannel, "upload "+ref).Message), "Only members of an organisation's SOC (in its SOC channel) can get an upload link")
	require.Contains(t, plain(ask(Slack, analyst, contosoSOC, "upload").Message), "Usage: /experts upload EOD-1042")
	require.Equal(t, 2, f.count(t, `SELECT count(*) FROM case_upload_links`))

	// Once the case is concluded there is nothing to send a sample to.
	_, m := f.run(t, Slack, expert1, deskChannel, `conclude `+ref+` "benign: a signed installer"`)
	require.Contains(t, plain(m), "concluded")
	require.Contains(t, plain(ask(Slack, analyst, contosoSOC, "upload "+ref).Message), "samples can be sent while a case is open")
	require.Equal(t, 2, f.count(t, `SELECT count(*) FROM case_upload_links`))
}

// TestSampleAnnouncedAndDownloaded: a sample sent through an upload link is
// announced to both sides by name, size and hash; the desk card gets a
// Download sample button, which gives the expert who presses it a private
// link to the right bytes, and a member of another org nothing.
func TestSampleAnnouncedAndDownloaded(t *testing.T) {
	t.Parallel()
	f := sampleSetup(t, casework.Config{})
	ctx := context.Background()
	ref, receipt, desk := f.fileCase(t)
	_, _ = f.run(t, Slack, expert1, deskChannel, "sample "+ref)
	posted(t, f.slack, contosoSOC, &receipt, "upload a file sample for "+ref)
	f.settledOutbox(t)

	body := bytes.Repeat([]byte("MZ not really an invoice\n"), 400)
	link, err := f.cw.IssueUploadLink(ctx, ref, casework.System())
	require.NoError(t, err)
	smp, err := f.cw.StoreSample(ctx, casework.Upload{Token: link.Token, Name: "invoice <!channel>.exe", Body: bytes.NewReader(body), Address: "203.0.113.7"})
	require.NoError(t, err)

	deskNote := posted(t, f.slack, deskChannel, &desk, "File sample for "+ref)
	got := plain(deskNote.Message)
	require.Contains(t, got, "invoice <!channel>.exe (9.8 KiB)")
	require.Contains(t, got, "SHA-256 "+smp.SHA256)
	require.Contains(t, got, "MD5 "+smp.MD5)
	require.Contains(t, got, "does not match: SHA-256 "+smp.SHA256+" is not "+fileHash)
	require.Contains(t, got, "from 203.0.113.7")
	require.Contains(t, got, "back in progress")
	receiptNote := posted(t, f.slack, contosoSOC, &receipt, "through the upload link")
	require.Contains(t, plain(receiptNote.Message), "SHA-256 "+smp.SHA256)
	require.NotContains(t, plain(receiptNote.Message), "does not match", "the match is for the desk")
	require.NotContains(t, plain(receiptNote.Message), "203.0.113.7")
	for _, c := range append(f.slack.Calls(), f.discord.Calls()...) {
		for _, l := range c.Message.Text {
			for _, s := range l {
				if strings.Contains(s.Text, "<!channel>") {
					require.True(t, s.Untrusted, "the file name is shown literally")
				}
			}
		}
	}
	require.NotContains(t, everything(f.slack, f.discord), "not really an invoice", "the file never crosses")

	// The desk card carries the button.
	var card bottest.Call
	f.waitFor(t, "the desk card's Download sample button", func() bool {
		for _, c := range f.slack.Find(bottest.OpUpdate, func(c bottest.Call) bool { return c.Ref.Message == desk.Message }) {
			for _, b := range c.Message.Buttons {
				if b.Action == ActDownloadSample {
					card = c
				}
			}
		}
		return card.Op != ""
	})
	var value string
	for _, b := range card.Message.Buttons {
		if b.Action == ActDownloadSample {
			value = b.Value
			require.Equal(t, "Download sample", b.Label)
		}
	}
	require.Equal(t, fmt.Sprintf("%s:%d", ref, smp.ID), value)
	require.Contains(t, plain(card.Message), "File samples")

	// The expert presses it: a private link to the bytes.
	ack, r := f.press(t, Slack, expert1, ActDownloadSample, value, desk)
	require.Nil(t, ack.Message)
	ans, ok := r.Wait(tenSeconds)
	require.True(t, ok)
	require.True(t, ans.Private)
	dl := linkIn(t, ans.Message, linkBase+"/samples/d/")
	require.Contains(t, plain(ans.Message), "password infected")
	opened, err := f.cw.OpenSample(ctx, strings.TrimPrefix(dl, linkBase+"/samples/d/"), "198.51.100.1", nil)
	require.NoError(t, err)
	gotBytes, err := io.ReadAll(opened.Body)
	require.NoError(t, err)
	require.NoError(t, opened.Body.Close())
	require.Equal(t, body, gotBytes, "the link downloads the right bytes")
	require.Equal(t, expert1, opened.Expert.UserID)

	// Anyone else pressing it gets no link: a member of another org, a
	// member of the case's own org, and a button naming another case.
	for _, p := range []struct {
		platform Platform
		user     string
		on       Ref
		value    string
	}{
		{Discord, fabAnalyst, Ref{Platform: Discord, Workspace: fabGuild, Channel: fabSOC, Message: "m1"}, value},
		{Slack, analyst, Ref{Platform: Slack, Workspace: slackTeam, Channel: contosoSOC, Message: receipt.Message}, value},
	} {
		ack, r := f.press(t, p.platform, p.user, ActDownloadSample, p.value, p.on)
		msg := ack.Message
		if msg == nil {
			a, ok := r.Wait(tenSeconds)
			require.True(t, ok)
			msg = &a.Message
		}
		require.NotContains(t, fmt.Sprint(*msg), "/samples/d/")
		require.Contains(t, plain(*msg), "Only threat experts can download file samples")
	}
	ack, r = f.press(t, Slack, expert1, ActDownloadSample, ref+":999", desk)
	ans, ok = r.Wait(tenSeconds)
	require.True(t, ok)
	require.Contains(t, plain(ans.Message), "Not found")
	require.Equal(t, 1, f.count(t, `SELECT count(*) FROM case_download_links`), "one link, the expert's")
}

// TestThreadFilesBecomeSamples: a file posted in a case thread (with no
// text) is fetched, stored as a sample and announced to both sides; the
// file never crosses; a redelivery stores nothing twice; a fetch that fails
// for now is retried; a file over the limit or one the platform cannot
// give gets a note in its thread.
func TestThreadFilesBecomeSamples(t *testing.T) {
	t.Parallel()
	f := sampleSetup(t, casework.Config{SampleMaxBytes: 64 << 10})
	ctx := context.Background()
	ref, receipt, desk := f.fileCase(t)
	_, _ = f.run(t, Slack, expert1, deskChannel, "sample "+ref)
	posted(t, f.slack, contosoSOC, &receipt, "upload a file sample for "+ref)
	f.settledOutbox(t)

	body := bytes.Repeat([]byte("dropper stage two; "), 1000)
	const fileURL = "https://files.slack.example/F0INVOICE/download/invoice.exe"
	f.slack.AddFile(fileURL, body)
	f.slack.FailFetch(bottest.ServerError()) // the first fetch fails for now
	file := File{ID: "F0INVOICE", Name: "invoice.exe", Size: int64(len(body)), URL: fileURL}
	reply := Reply{Parent: receipt, Message: Ref{Platform: Slack, Workspace: slackTeam, Channel: contosoSOC, Message: "1700000000.000100"},
		Author: f.user(Slack, analyst), Key: "ev-file-1", Files: []File{file}}
	require.NoError(t, f.bot.HandleReply(ctx, reply))

	deskNote := posted(t, f.slack, deskChannel, &desk, "File sample for "+ref+": invoice.exe (18.6 KiB)")
	require.Contains(t, plain(deskNote.Message), "From Ana Lyst (requester, Contoso), posted in their thread")
	require.Contains(t, plain(deskNote.Message), "back in progress")
	posted(t, f.slack, contosoSOC, &receipt, "Stored for the experts of "+ref+": invoice.exe")
	require.Equal(t, casework.StatusInProgress, f.caseStatus(t, ref), "the sample is the requester's answer")
	smps, err := f.cw.Samples(ctx, casework.AllOrgs(), ref)
	require.NoError(t, err)
	require.Len(t, smps, 1)
	require.Equal(t, casework.SourceThread, smps[0].Source)
	require.Equal(t, "F0INVOICE", smps[0].FileID)
	require.Equal(t, 1, f.slack.Count(bottest.OpFetch, nil), "fetched again after the failure, once")

	// Redelivered (the same event), and the same file again in another
	// event: stored once, announced once.
	require.NoError(t, f.bot.HandleReply(ctx, reply))
	again := reply
	again.Key = "ev-file-1-retry"
	require.NoError(t, f.bot.HandleReply(ctx, again))
	f.waitFor(t, "the second event worked", func() bool { return f.slack.Count(bottest.OpFetch, nil) == 2 })
	f.settledOutbox(t)
	require.Equal(t, 1, f.count(t, `SELECT count(*) FROM case_samples`))
	require.Equal(t, 1, f.slack.Count(bottest.OpPost, func(c bottest.Call) bool { return strings.Contains(plain(c.Message), "File sample for") }))
	require.NotContains(t, everything(f.slack), "dropper stage two", "the file never crosses")
	require.NotContains(t, everything(f.slack), fileURL, "nor its address")

	// Too large, declared or not; one the platform cannot give; and a
	// text with them, relayed.
	big := bytes.Repeat([]byte{'x'}, 70<<10)
	f.slack.AddFile("https://files.slack.example/F0BIG", big)
	files := []File{
		{ID: "F0HUGE", Name: "huge.iso", Size: 5 << 30, URL: "https://files.slack.example/F0HUGE"},
		{ID: "F0BIG", Name: "big.bin", URL: "https://files.slack.example/F0BIG"},
		{ID: "F0GONE", Name: "gone.bin", Size: 10, URL: "https://files.slack.example/F0GONE"},
	}
	require.NoError(t, f.bot.HandleReply(ctx, Reply{Parent: receipt, Message: Ref{Platform: Slack, Workspace: slackTeam, Channel: contosoSOC, Message: "1700000000.000200"},
		Author: f.user(Slack, analyst), Key: "ev-file-2", Text: "here are the others", Files: files}))
	note := posted(t, f.slack, contosoSOC, &receipt, "huge.iso was not stored as a sample: it is 5 GiB, over the limit of 64 KiB.")
	got := plain(note.Message)
	require.Contains(t, got, "big.bin was not stored as a sample: it is larger than the limit of 64 KiB.")
	require.Contains(t, got, "gone.bin could not be fetched")
	posted(t, f.slack, deskChannel, &desk, "here are the others")
	f.settledOutbox(t)
	require.Equal(t, 1, f.count(t, `SELECT count(*) FROM case_samples`))
	require.Zero(t, f.count(t, `SELECT count(*) FROM case_sample_chunks WHERE sample_id <> $1`, smps[0].ID))

	// An expert's file in the desk thread is a sample too; the requester is
	// told by name and hash only.
	tool := []byte("yara rule for this family")
	f.slack.AddFile("https://files.slack.example/F0RULE", tool)
	require.NoError(t, f.bot.HandleReply(ctx, Reply{Parent: desk, Message: Ref{Platform: Slack, Workspace: slackTeam, Channel: deskChannel, Message: "1700000000.000300"},
		Author: f.user(Slack, expert1), Key: "ev-file-3", Files: []File{{ID: "F0RULE", Name: "family.yar", Size: int64(len(tool)), URL: "https://files.slack.example/F0RULE"}}}))
	posted(t, f.slack, contosoSOC, &receipt, "The threat expert added a file to "+ref+": family.yar")
	require.NotContains(t, everything(f.slack), "yara rule for this family")
	// The expert is told the requester does not get it (nothing said so).
	posted(t, f.slack, deskChannel, &desk, "The requester does not receive this file")
	// A file whose bytes do not add up to the declared size is not stored.
	f.slack.AddFile("https://files.slack.example/F0SHORT", []byte("cut"))
	require.NoError(t, f.bot.HandleReply(ctx, Reply{Parent: receipt, Message: Ref{Platform: Slack, Workspace: slackTeam, Channel: contosoSOC, Message: "1700000000.000400"},
		Author: f.user(Slack, analyst), Key: "ev-file-4", Files: []File{{ID: "F0SHORT", Name: "short.bin", Size: 1000, URL: "https://files.slack.example/F0SHORT"}}}))
	f.waitFor(t, "the short file was tried", func() bool {
		return f.slack.Count(bottest.OpFetch, func(c bottest.Call) bool { return c.File.ID == "F0SHORT" }) >= 2
	})
	require.Zero(t, f.count(t, `SELECT count(*) FROM case_samples WHERE chat_file = 'F0SHORT'`))
}

// TestSlowFileKeepsItsLease: a reply whose file downloads for longer than
// an attempt at other work may last keeps its lease while it does (no other
// replica takes it) and is not cut off: the file is stored, fetched once.
func TestSlowFileKeepsItsLease(t *testing.T) {
	t.Parallel()
	f := sampleSetup(t, casework.Config{}, func(c *Config) {
		c.Inbound = Inbound{Lease: 1500 * time.Millisecond, Timeout: 300 * time.Millisecond, FileTimeout: time.Minute,
			BackoffBase: 10 * time.Millisecond, Poll: 50 * time.Millisecond}
	})
	ctx := context.Background()
	ref, receipt, desk := f.fileCase(t)
	const url = "https://files.slack.example/F0SLOW"
	f.slack.AddFile(url, []byte("a slow sample"))
	release := f.slack.HoldFile(url)
	t.Cleanup(release)
	require.NoError(t, f.bot.HandleReply(ctx, Reply{Parent: receipt, Message: Ref{Platform: Slack, Workspace: slackTeam, Channel: contosoSOC, Message: "1700000000.000900"},
		Author: f.user(Slack, analyst), Key: "ev-slow", Files: []File{{ID: "F0SLOW", Name: "slow.bin", URL: url}}}))
	f.waitFor(t, "the download started", func() bool { return f.slack.Count(bottest.OpFetch, nil) == 1 })

	lease := func() time.Time {
		var until time.Time
		require.NoError(t, f.db.QueryRow(ctx, `SELECT locked_until FROM bot_inbound WHERE key LIKE '%ev-slow'`).Scan(&until))
		return until
	}
	first := lease()
	// Held past its first lease and past three attempts' worth of Timeout.
	eventually(t, "the lease extended beyond the first", func() bool { return lease().After(first.Add(time.Second)) })
	release()
	posted(t, f.slack, deskChannel, &desk, "File sample for "+ref+": slow.bin")
	require.Equal(t, 1, f.slack.Count(bottest.OpFetch, nil), "no other attempt took the row")
	require.Equal(t, 1, f.count(t, `SELECT count(*) FROM case_samples`))
}

// TestLongSampleRequestKeepsItsLink: an expert's long request for a sample
// follows whole, and the upload link comes before their words, so that a
// platform cutting a long note cuts words, not the link (it came after).
func TestLongSampleRequestKeepsItsLink(t *testing.T) {
	t.Parallel()
	f := sampleSetup(t, casework.Config{})
	ref, receipt, _ := f.fileCase(t)
	words := "the invoice.exe from the mail " + strings.Repeat("and what it dropped ", 150)
	_, m := f.run(t, Slack, expert1, deskChannel, "sample "+ref+" "+words)
	require.Contains(t, plain(m), "file sample needed")
	note := posted(t, f.slack, contosoSOC, &receipt, "upload a file sample for "+ref)
	text := plain(note.Message)
	require.Less(t, strings.Index(text, "curl -F"), strings.Index(text, "the invoice.exe from the mail"), "the link first")
	require.Contains(t, text, "(continued in the next message)")
	posted(t, f.slack, contosoSOC, &receipt, ref+": File sample needed, continued (2 of 2)")
}

// TestSampleToAConcludedCaseSaysSo: a file posted in the thread of a
// concluded case is still stored, and the desk is told the case is
// concluded, as for a message: announced as any other sample, it went
// unseen until the case closed itself.
func TestSampleToAConcludedCaseSaysSo(t *testing.T) {
	t.Parallel()
	f := sampleSetup(t, casework.Config{SampleMaxBytes: 64 << 10})
	ctx := context.Background()
	ref, receipt, desk := f.fileCase(t)
	_, err := f.cw.Transition(ctx, casework.TransitionRequest{Ref: ref, To: casework.StatusConcluded, Summary: "benign",
		Actor: casework.Actor{Person: casework.Person{Platform: "slack", Workspace: slackTeam, UserID: expert1, DisplayName: "Eve"}, Role: casework.RoleExpert}})
	require.NoError(t, err)
	f.settledOutbox(t)

	body := []byte("one more stage")
	const fileURL = "https://files.slack.example/F0LATE/download/late.exe"
	f.slack.AddFile(fileURL, body)
	file := File{ID: "F0LATE", Name: "late.exe", Size: int64(len(body)), URL: fileURL}
	require.NoError(t, f.bot.HandleReply(ctx, Reply{Parent: receipt, Message: Ref{Platform: Slack, Workspace: slackTeam, Channel: contosoSOC, Message: "1700000000.000300"},
		Author: f.user(Slack, analyst), Key: "ev-file-late", Files: []File{file}}))
	deskNote := posted(t, f.slack, deskChannel, &desk, "File sample for "+ref+": late.exe")
	require.Contains(t, plain(deskNote.Message), ref+" is concluded: this sample does not reopen it.")
}
