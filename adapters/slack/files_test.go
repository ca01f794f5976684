package slack_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/threatdesk/threatdesk/adapters/slack/slackfake"
	"github.com/threatdesk/threatdesk/bot"
	"github.com/threatdesk/threatdesk/internal/pgtest"
)

// sampleLinks builds sample URLs as adapters/web's Links does.
type sampleLinks struct{}

const sampleBase = "https://threatdesk.example.com"

func (sampleLinks) Upload(token string) string {
	return sampleBase + "/samples/u/" + url.PathEscape(token)
}
func (sampleLinks) Download(token string) string {
	return sampleBase + "/samples/d/" + url.PathEscape(token)
}
func (sampleLinks) LocalNote() string { return "" }

// structured is n bytes of a file whose 32-byte runs are all distinct.
func structured(n int) []byte {
	var b bytes.Buffer
	for i := 0; b.Len() < n; i++ {
		fmt.Fprintf(&b, "MZ line %08d of a sample\n", i)
	}
	return b.Bytes()[:n]
}

// TestFilesInThreadReplies: a file posted in a thread reaches the bot with
// the reply, even with no text; the adapter downloads its bytes with the
// bot token (asking files.info for a Slack Connect file first); without
// files:read Slack's redirect to its sign-in page is a permanent error
// naming the scope; the token never goes to a host that is not Slack's.
func TestFilesInThreadReplies(t *testing.T) {
	t.Parallel()
	f := setup(t, setupOpts{socket: true})
	body := structured(5000)
	_, cb := f.fake.UserFileMessage(socChannel, "1700000000.000001", analyst, "",
		slackfake.File{Name: "invoice.exe", Data: body},
		slackfake.File{Name: "connect.bin", Data: []byte("shared from another org"), CheckFileInfo: true})
	_, err := f.fake.Event(f.ctx, cb, 0)
	require.NoError(t, err)
	waitFor(t, "the reply", func() bool { return len(f.rec.Replies()) == 1 }, f.rec)
	r := f.rec.Replies()[0]
	require.Empty(t, r.Text)
	require.Len(t, r.Files, 2)
	require.Equal(t, "invoice.exe", r.Files[0].Name)
	require.EqualValues(t, len(body), r.Files[0].Size)
	require.True(t, strings.HasPrefix(r.Files[0].URL, f.fake.URL()+"/files-pri/"), r.Files[0].URL)
	require.Empty(t, r.Files[1].URL, "a Slack Connect file is looked up")

	read := func(file bot.File) ([]byte, error) {
		rc, err := f.adapter.FetchFile(f.ctx, r.Message, file)
		if err != nil {
			return nil, err
		}
		defer rc.Close()
		return io.ReadAll(rc)
	}
	got, err := read(r.Files[0])
	require.NoError(t, err)
	require.Equal(t, body, got)
	got, err = read(r.Files[1])
	require.NoError(t, err)
	require.Equal(t, "shared from another org", string(got))
	for _, d := range f.fake.Downloads() {
		require.True(t, d.Authorized, "the bot token as a bearer token")
	}
	require.Len(t, f.fake.Calls("files.info"), 1)

	// A host that is not Slack's never sees the token.
	var asked atomic.Int32
	other := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		asked.Add(1)
		require.Empty(t, r.Header.Get("Authorization"))
	}))
	t.Cleanup(other.Close)
	_, err = read(bot.File{ID: "F0X", Name: "x", URL: other.URL + "/files-pri/T-F0X/download/x"})
	requirePermanent(t, err, "file_host")
	require.Zero(t, asked.Load())

	// A file deleted meanwhile.
	_, err = read(bot.File{ID: "F0GONE", Name: "gone", URL: f.fake.URL() + "/files-pri/" + f.fake.Options().TeamID + "-F0GONE/download/gone"})
	requirePermanent(t, err, "file_not_found")
}

// TestFilesWithoutFilesRead: installed without files:read, Slack sends its
// sign-in page instead of a file; that is a permanent error that says to
// add the scope, and so is files.info's missing_scope.
func TestFilesWithoutFilesRead(t *testing.T) {
	t.Parallel()
	f := setup(t, setupOpts{socket: true, fake: slackfake.Options{NoFilesRead: true}})
	_, cb := f.fake.UserFileMessage(socChannel, "1700000000.000001", analyst, "see attached",
		slackfake.File{Name: "a.bin", Data: []byte("abc")}, slackfake.File{Name: "b.bin", Data: []byte("def"), CheckFileInfo: true})
	_, err := f.fake.Event(f.ctx, cb, 0)
	require.NoError(t, err)
	waitFor(t, "the reply", func() bool { return len(f.rec.Replies()) == 1 }, f.rec)
	r := f.rec.Replies()[0]
	_, err = f.adapter.FetchFile(f.ctx, r.Message, r.Files[0])
	de := requirePermanent(t, err, "missing_scope")
	require.Contains(t, de.Operator, "files:read")
	_, err = f.adapter.FetchFile(f.ctx, r.Message, r.Files[1])
	de = requirePermanent(t, err, "missing_scope")
	require.Contains(t, de.Operator, "files:read")
	require.NotContains(t, err.Error(), f.fake.Options().BotToken)
}

func requirePermanent(t *testing.T, err error, code string) *bot.DeliveryError {
	t.Helper()
	var d *bot.DeliveryError
	require.ErrorAs(t, err, &d, "%v", err)
	require.Equal(t, bot.Permanent, d.Kind, "%v", err)
	require.Equal(t, code, d.Code, "%v", err)
	return d
}

// TestFileSampleFlowOverSlack: the real bot, casework and Postgres behind
// the adapter. The expert asks for a sample: the analyst's thread gets the
// upload link. The analyst posts the file in the case's thread with no
// text: it becomes a sample, stored encrypted, announced to both threads by
// name, size and hash, the case back in progress; the file is never posted
// to the desk; a redelivery stores nothing twice. The desk card's Download
// sample button answers the expert privately with a download link.
func TestFileSampleFlowOverSlack(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	fake := realFake(t, slackfake.Options{})
	db := pgtest.New(t)
	startRealBotOn(t, ctx, fake, realConfig(fake), db)
	receipt, card := openCase(t, ctx, fake, db, "EOD-1")

	press := func(action string) {
		t.Helper()
		msg, ok := fake.Message(deskChannel, card.TS)
		require.True(t, ok)
		card = msg
		p, err := fake.Press(deskChannel, card.TS, expert, action)
		require.NoError(t, err)
		_, err = fake.Interactive(ctx, p)
		require.NoError(t, err)
	}
	press("take")
	waitFor(t, "taken", func() bool { return inThread(t, fake, socChannel, receipt.TS, "took EOD-1") == 1 }, fake)
	_, err := fake.Command(ctx, slackfake.SlashCommand{UserID: expert, ChannelID: deskChannel, Text: "sample EOD-1 the invoice from the phishing mail"})
	require.NoError(t, err)
	waitFor(t, "the upload link in the analyst's thread", func() bool {
		return inThread(t, fake, socChannel, receipt.TS, sampleBase+"/samples/u/") == 1
	}, fake)
	require.Zero(t, inThread(t, fake, deskChannel, card.TS, "/samples/u/"), "the desk is told, not given the link")
	settled(t, ctx, db)

	body := structured(40 << 10)
	_, cb := fake.UserFileMessage(socChannel, receipt.TS, analyst, "", slackfake.File{Name: "invoice.exe", Mimetype: "application/x-msdownload", Data: body})
	_, err = fake.Event(ctx, cb, 0)
	require.NoError(t, err)
	waitFor(t, "the sample announced on the desk", func() bool {
		return inThread(t, fake, deskChannel, card.TS, "File sample for EOD-1:* invoice.exe (40 KiB)") == 1
	}, fake)
	waitFor(t, "and confirmed to the analyst", func() bool {
		return inThread(t, fake, socChannel, receipt.TS, "Stored for the experts of EOD-1:* invoice.exe") == 1
	}, fake)
	settled(t, ctx, db)

	var sha string
	require.NoError(t, db.QueryRow(ctx, `SELECT sha256 FROM case_samples`).Scan(&sha))
	require.Equal(t, 1, inThread(t, fake, deskChannel, card.TS, sha))
	require.Equal(t, 1, inThread(t, fake, deskChannel, card.TS, "back in progress"))
	var status string
	require.NoError(t, db.QueryRow(ctx, `SELECT status FROM cases`).Scan(&status))
	require.Equal(t, "in_progress", status)
	// The bytes in the database are not the file's.
	rows, err := db.Query(ctx, `SELECT data FROM case_sample_chunks`)
	require.NoError(t, err)
	n := 0
	for rows.Next() {
		var data []byte
		require.NoError(t, rows.Scan(&data))
		for i := 0; i+32 <= len(body); i += 997 {
			require.False(t, bytes.Contains(data, body[i:i+32]), "a chunk holds the file in clear")
		}
		n++
	}
	require.NoError(t, rows.Err())
	require.Positive(t, n)
	// The file never crosses: no message of the bot carries it or its address.
	for _, m := range fake.Messages("") {
		if m.User == analyst {
			continue
		}
		require.Empty(t, m.Files, "only the analyst's message has a file")
		all := m.Text + string(m.Blocks)
		require.NotContains(t, all, "/files-pri/")
		require.NotContains(t, all, "MZ line 00000001")
	}
	require.Len(t, fake.Downloads(), 1)

	// Slack redelivers the event: nothing new.
	_, err = fake.Event(ctx, cb, 1)
	require.NoError(t, err)
	settled(t, ctx, db)
	var samples int
	require.NoError(t, db.QueryRow(ctx, `SELECT count(*) FROM case_samples`).Scan(&samples))
	require.Equal(t, 1, samples)
	require.Equal(t, 1, inThread(t, fake, deskChannel, card.TS, "File sample for EOD-1"))

	// Download sample: a private answer with the link, nothing in public.
	waitFor(t, "the Download sample button", func() bool {
		m, _ := fake.Message(deskChannel, card.TS)
		return strings.Contains(string(m.Blocks), string(bot.ActDownloadSample))
	}, fake)
	press(string(bot.ActDownloadSample))
	waitFor(t, "the private download link", func() bool { return responses(fake, sampleBase+"/samples/d/") == 1 }, fake)
	for _, r := range fake.Responses() {
		if strings.Contains(r.Text+string(r.Blocks), "/samples/d/") {
			require.Equal(t, "ephemeral", r.ResponseType)
		}
	}
	for _, m := range fake.Messages("") {
		require.NotContains(t, m.Text+string(m.Blocks), "/samples/d/")
	}
	var links int
	require.NoError(t, db.QueryRow(ctx, `SELECT count(*) FROM case_download_links WHERE expert_user = $1`, expert).Scan(&links))
	require.Equal(t, 1, links)
	require.Empty(t, fake.Violations())
}
