package casework_test

import (
	"bytes"
	"context"
	"crypto/md5" //nolint:gosec // test of the lookup hashes
	"crypto/sha1"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/threatdesk/threatdesk/casework"
	"github.com/threatdesk/threatdesk/internal/secrets"
)

// testChunk is the chunk size of the sample tests: small, so that a few
// KiB span several chunks.
const testChunk = 4096

// sampleBytes is n bytes of a structured (not random) file: every 16-byte
// window is distinct enough that finding one in a chunk means plaintext leaked.
func sampleBytes(n int) []byte {
	var b bytes.Buffer
	b.WriteString("MZ\x90\x00")
	for i := 0; b.Len() < n; i++ {
		fmt.Fprintf(&b, "line %08d of the sample, do not run\n", i)
	}
	return b.Bytes()[:n]
}

func digests(b []byte) (string, string, string) {
	m, s1, s256 := md5.Sum(b), sha1.Sum(b), sha256.Sum256(b) //nolint:gosec // test
	return hex.EncodeToString(m[:]), hex.EncodeToString(s1[:]), hex.EncodeToString(s256[:])
}

// sampleSetup is setup with small chunks.
func sampleSetup(t *testing.T, mods ...func(*casework.Config)) *fixture {
	t.Helper()
	f := setup(t, mods...)
	f.svc.SetSampleChunkSize(testChunk)
	return f
}

// fileCase opens a case of org about the file with SHA-256 hash, taken by
// U-expert and moved to st (in_progress or a status from there).
func (f *fixture) fileCase(t *testing.T, org, hash string, st casework.Status) *casework.Case {
	t.Helper()
	ctx := context.Background()
	req := f.openReq(org)
	req.Subject = casework.Subject{Kind: casework.SubjectFile, ID: hash, Name: "invoice.exe"}
	req.Question = "Is <this> file malicious? <!channel>"
	c, _, err := f.svc.Open(ctx, req)
	require.NoError(t, err)
	c, err = f.svc.Take(ctx, c.Ref, expert("U-expert"))
	require.NoError(t, err)
	if st != casework.StatusInProgress {
		c, err = f.svc.Transition(ctx, casework.TransitionRequest{Ref: c.Ref, To: st, Actor: expert("U-expert"), Summary: "done"})
		require.NoError(t, err)
	}
	return c
}

// chunks returns the stored chunks of every sample of the database.
func (f *fixture) chunks(t *testing.T) [][]byte {
	t.Helper()
	rows, err := f.pool.Query(context.Background(), `SELECT data FROM case_sample_chunks ORDER BY sample_id, seq`)
	require.NoError(t, err)
	out, err := pgx.CollectRows(rows, pgx.RowTo[[]byte])
	require.NoError(t, err)
	return out
}

func (f *fixture) count(t *testing.T, sql string, args ...any) int {
	t.Helper()
	var n int
	require.NoError(t, f.pool.QueryRow(context.Background(), sql, args...).Scan(&n))
	return n
}

// requireNoPlaintext fails when any stored chunk holds any 16-byte run of plain.
func requireNoPlaintext(t *testing.T, plain []byte, chunks [][]byte) {
	t.Helper()
	const w = 16
	windows := make(map[[w]byte]struct{}, len(plain))
	for i := 0; i+w <= len(plain); i++ {
		windows[[w]byte(plain[i:i+w])] = struct{}{}
	}
	for ci, c := range chunks {
		require.False(t, bytes.Contains(c, plain[:min(len(plain), 64)]))
		for i := 0; i+w <= len(c); i++ {
			if _, ok := windows[[w]byte(c[i:i+w])]; ok {
				t.Fatalf("chunk %d holds plaintext at offset %d: %q", ci, i, c[i:i+w])
			}
		}
	}
}

// outboxPayloads returns the payloads of a case's outbox events of kind.
func (f *fixture) outboxPayloads(t *testing.T, ref, kind string) []json.RawMessage {
	t.Helper()
	rows, err := f.pool.Query(context.Background(), `SELECT payload FROM outbox WHERE stream = $1 AND kind = $2 ORDER BY id`,
		casework.Stream(ref), kind)
	require.NoError(t, err)
	out, err := pgx.CollectRows(rows, pgx.RowTo[json.RawMessage])
	require.NoError(t, err)
	return out
}

func (f *fixture) kinds(t *testing.T, ref string) []string {
	t.Helper()
	tl, err := f.svc.Timeline(context.Background(), casework.AllOrgs(), ref)
	require.NoError(t, err)
	var out []string
	for _, e := range tl {
		out = append(out, e.Kind)
	}
	return out
}

func (f *fixture) download(t *testing.T, ref string, id int64) []byte {
	t.Helper()
	ctx := context.Background()
	dl, err := f.svc.IssueDownloadLink(ctx, ref, id, expert("U-expert"))
	require.NoError(t, err)
	d, err := f.svc.OpenSample(ctx, dl.Token, "192.0.2.7", nil)
	require.NoError(t, err)
	defer d.Body.Close()
	b, err := io.ReadAll(d.Body)
	require.NoError(t, err)
	return b
}

// TestStoreSampleThroughALink: the upload is stored encrypted in chunks,
// hashed, announced with the match against the case's file, recorded on the
// timeline, and it ends the wait for the sample.
func TestStoreSampleThroughALink(t *testing.T) {
	t.Parallel()
	f := sampleSetup(t)
	ctx := context.Background()
	plain := sampleBytes(2*testChunk + 1000) // three chunks, the last short
	md, s1, s256 := digests(plain)
	c := f.fileCase(t, "contoso", strings.ToUpper(s256), casework.StatusFileSampleNeeded)
	require.Nil(t, f.get(t, c.Ref).DueAt, "the clock is paused while the case waits for the sample")

	link, err := f.svc.IssueUploadLink(ctx, c.Ref, casework.System())
	require.NoError(t, err)
	require.Len(t, link.Token, 43)
	require.Equal(t, t0.Add(casework.UploadLinkTTL), link.ExpiresAt)
	info, err := f.svc.UploadLinkInfo(ctx, link.Token)
	require.NoError(t, err)
	require.Equal(t, c.Ref, info.Ref)
	require.Equal(t, c.Question, info.Question)
	require.Equal(t, casework.DefaultSampleMaxBytes, info.MaxBytes)

	f.clock.Advance(time.Hour)
	smp, err := f.svc.StoreSample(ctx, casework.Upload{Token: link.Token, Name: `C:\Users\x\Desktop\in` + "\u202e" + `voice.exe`,
		Body: bytes.NewReader(plain), Address: "198.51.100.4"})
	require.NoError(t, err)
	require.Equal(t, "invoice.exe", smp.Name, "the path and the bidirectional override are gone")
	require.Equal(t, int64(len(plain)), smp.Size)
	require.Equal(t, md, smp.MD5)
	require.Equal(t, s1, smp.SHA1)
	require.Equal(t, s256, smp.SHA256)
	require.Equal(t, casework.MatchYes, smp.Match)
	require.Equal(t, "matches the file the case is about", smp.MatchText)
	require.Equal(t, casework.SourceUpload, smp.Source)
	require.Equal(t, casework.SideRequester, smp.Side)

	// Encrypted at rest: three chunks, none holding plaintext.
	chunks := f.chunks(t)
	require.Len(t, chunks, 3)
	requireNoPlaintext(t, plain, chunks)
	var stored int64
	for _, ch := range chunks {
		stored += int64(len(ch))
	}
	require.Equal(t, int64(len(plain))+3*29, stored, "each chunk is sealed on its own (version, nonce, tag)")

	// Announced to both sides, with the match; back in progress, clock running.
	evs := f.outboxPayloads(t, c.Ref, casework.EventSampleStored)
	require.Len(t, evs, 1)
	var ev casework.SampleStoredEvent
	require.NoError(t, json.Unmarshal(evs[0], &ev))
	require.Equal(t, casework.SampleStoredEvent{Ref: c.Ref, SampleID: smp.ID, Source: casework.SourceUpload,
		Side: casework.SideRequester, Name: "invoice.exe", Size: int64(len(plain)), MD5: md, SHA1: s1, SHA256: s256,
		Uploader: smp.Uploader, Address: "198.51.100.4", Link: link.Link, Match: casework.MatchYes,
		MatchText: "matches the file the case is about", Resumed: true}, ev)
	got := f.get(t, c.Ref)
	require.Equal(t, casework.StatusInProgress, got.Status)
	require.NotNil(t, got.DueAt, "the SLA clock runs again")
	var st casework.StatusChangedEvent
	sc := f.outboxPayloads(t, c.Ref, casework.EventStatusChanged)
	require.NoError(t, json.Unmarshal(sc[len(sc)-1], &st))
	require.True(t, st.Resumed)
	require.Equal(t, casework.StatusFileSampleNeeded, st.From)

	kinds := f.kinds(t, c.Ref)
	require.Equal(t, []string{casework.EventUploadLinkIssued, casework.EventSampleStored, casework.EventStatusChanged}, kinds[len(kinds)-3:])
	require.NoError(t, f.svc.VerifyTimeline(ctx, casework.AllOrgs(), c.Ref))

	// The download decrypts to the same bytes, and is recorded.
	require.Equal(t, plain, f.download(t, c.Ref, smp.ID))
	tl, err := f.svc.Timeline(ctx, casework.AllOrgs(), c.Ref)
	require.NoError(t, err)
	last := tl[len(tl)-1]
	require.Equal(t, casework.EventSampleDownloaded, last.Kind)
	var dev casework.SampleDownloadedEvent
	require.NoError(t, json.Unmarshal(last.Detail, &dev))
	require.Equal(t, "U-expert", dev.Expert.UserID)
	require.Equal(t, "192.0.2.7", dev.Address)
	require.NoError(t, f.svc.VerifyTimeline(ctx, casework.AllOrgs(), c.Ref))

	list, err := f.svc.Samples(ctx, casework.OrgViewer("contoso"), c.Ref)
	require.NoError(t, err)
	require.Len(t, list, 1)
	require.Equal(t, smp.SHA256, list[0].SHA256)
	require.Equal(t, casework.MatchYes, list[0].Match)
	_, err = f.svc.Samples(ctx, casework.OrgViewer("fabrikam"), c.Ref)
	require.ErrorIs(t, err, casework.ErrNotFound)
}

func TestStoreSampleMismatch(t *testing.T) {
	t.Parallel()
	f := sampleSetup(t)
	ctx := context.Background()
	other := strings.Repeat("ab", 32)
	c := f.fileCase(t, "contoso", other, casework.StatusInProgress)
	link, err := f.svc.IssueUploadLink(ctx, c.Ref, requester("contoso", "U-analyst"))
	require.NoError(t, err)
	plain := []byte("not the file you asked about")
	_, _, s256 := digests(plain)
	smp, err := f.svc.StoreSample(ctx, casework.Upload{Token: link.Token, Name: "x.bin", Body: bytes.NewReader(plain)})
	require.NoError(t, err)
	require.Equal(t, casework.MatchNo, smp.Match)
	require.Equal(t, "does not match: SHA-256 "+s256+" is not "+other+", the file the case is about", smp.MatchText)
	require.Equal(t, casework.StatusInProgress, f.get(t, c.Ref).Status, "not waiting: nothing to resume")
	require.Len(t, f.outboxPayloads(t, c.Ref, casework.EventSampleStored), 1)

	// A case about no file says nothing of a match.
	c2 := f.into(t, "contoso", casework.StatusInProgress)
	link, err = f.svc.IssueUploadLink(ctx, c2.Ref, casework.System())
	require.NoError(t, err)
	smp, err = f.svc.StoreSample(ctx, casework.Upload{Token: link.Token, Name: "x.bin", Body: bytes.NewReader(plain)})
	require.NoError(t, err)
	require.Equal(t, casework.MatchNone, smp.Match)
	require.Empty(t, smp.MatchText)
}

// TestUploadLinkRefusals: used, expired, unknown and foreign links store
// nothing and say why; bad bodies store nothing and leave the link usable.
func TestUploadLinkRefusals(t *testing.T) {
	t.Parallel()
	f := sampleSetup(t, func(c *casework.Config) { c.SampleMaxBytes = 3 * testChunk })
	ctx := context.Background()
	c := f.fileCase(t, "contoso", strings.Repeat("0", 64), casework.StatusFileSampleNeeded)
	link, err := f.svc.IssueUploadLink(ctx, c.Ref, casework.System())
	require.NoError(t, err)
	nothingStored := func(t *testing.T) {
		t.Helper()
		require.Zero(t, f.count(t, `SELECT count(*) FROM case_samples`))
		require.Zero(t, f.count(t, `SELECT count(*) FROM case_sample_chunks`))
		require.Empty(t, f.outboxPayloads(t, c.Ref, casework.EventSampleStored))
		require.Equal(t, casework.StatusFileSampleNeeded, f.get(t, c.Ref).Status)
	}
	linkErr := func(t *testing.T, err error, want casework.LinkProblem) {
		t.Helper()
		var le *casework.LinkError
		require.ErrorAs(t, err, &le)
		require.Equal(t, want, le.Problem, err.Error())
	}
	store := func(token string, body io.Reader) (*casework.Sample, error) {
		return f.svc.StoreSample(ctx, casework.Upload{Token: token, Source: casework.SourceUpload, Name: "s.bin", Body: body})
	}

	t.Run("over the limit", func(t *testing.T) {
		_, err := store(link.Token, bytes.NewReader(sampleBytes(3*testChunk+1)))
		var tl *casework.TooLargeError
		require.ErrorAs(t, err, &tl)
		require.Equal(t, int64(3*testChunk), tl.Limit)
		require.Equal(t, "the file is larger than the limit of 12 KiB; nothing was stored", err.Error())
		nothingStored(t)
	})
	t.Run("empty", func(t *testing.T) {
		_, err := store(link.Token, strings.NewReader(""))
		require.ErrorIs(t, err, casework.ErrEmptySample)
		require.ErrorIs(t, err, casework.ErrInvalid)
		nothingStored(t)
	})
	t.Run("interrupted", func(t *testing.T) {
		body := io.MultiReader(bytes.NewReader(sampleBytes(2*testChunk+10)), iotestErr{io.ErrUnexpectedEOF})
		_, err := store(link.Token, body)
		var re *casework.ReadError
		require.ErrorAs(t, err, &re)
		require.ErrorIs(t, err, io.ErrUnexpectedEOF)
		nothingStored(t)
	})
	t.Run("unknown", func(t *testing.T) {
		for _, tok := range []string{"", "short", strings.Repeat("A", 43), link.Token[:42] + "!"} {
			_, err := store(tok, strings.NewReader("x"))
			linkErr(t, err, casework.LinkUnknown)
			_, err = f.svc.UploadLinkInfo(ctx, tok)
			linkErr(t, err, casework.LinkUnknown)
		}
		nothingStored(t)
	})

	// Exactly the limit is fine, and the link was not spent by the refusals.
	smp, err := store(link.Token, bytes.NewReader(sampleBytes(3*testChunk)))
	require.NoError(t, err)
	require.EqualValues(t, 3*testChunk, smp.Size)
	require.Equal(t, 3, f.count(t, `SELECT count(*) FROM case_sample_chunks`))

	t.Run("used", func(t *testing.T) {
		_, err := store(link.Token, strings.NewReader("again"))
		linkErr(t, err, casework.LinkUsed)
		require.Contains(t, err.Error(), "already used")
		_, err = f.svc.UploadLinkInfo(ctx, link.Token)
		linkErr(t, err, casework.LinkUsed)
		require.Equal(t, 1, f.count(t, `SELECT count(*) FROM case_samples`))
	})
	t.Run("foreign: a download token is no upload token", func(t *testing.T) {
		dl, err := f.svc.IssueDownloadLink(ctx, c.Ref, smp.ID, expert("U-expert"))
		require.NoError(t, err)
		_, err = store(dl.Token, strings.NewReader("x"))
		linkErr(t, err, casework.LinkUnknown)
		_, err = f.svc.OpenSample(ctx, link.Token, "", nil)
		linkErr(t, err, casework.LinkUnknown)
	})
	t.Run("expired", func(t *testing.T) {
		l2, err := f.svc.IssueUploadLink(ctx, c.Ref, casework.System())
		require.NoError(t, err)
		f.clock.Advance(casework.UploadLinkTTL)
		_, err = store(l2.Token, strings.NewReader("late"))
		linkErr(t, err, casework.LinkExpired)
		_, err = f.svc.UploadLinkInfo(ctx, l2.Token)
		linkErr(t, err, casework.LinkExpired)
		require.Equal(t, 1, f.count(t, `SELECT count(*) FROM case_samples`))
	})
}

type iotestErr struct{ err error }

func (r iotestErr) Read([]byte) (int, error) { return 0, r.err }

// TestUploadLinkBusy: a second upload through a link while one streams is
// refused at once, and the first one completes.
func TestUploadLinkBusy(t *testing.T) {
	t.Parallel()
	f := sampleSetup(t)
	ctx := context.Background()
	c := f.fileCase(t, "contoso", strings.Repeat("1", 64), casework.StatusFileSampleNeeded)
	link, err := f.svc.IssueUploadLink(ctx, c.Ref, casework.System())
	require.NoError(t, err)
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	go func() {
		_, err := f.svc.StoreSample(ctx, casework.Upload{Token: link.Token, Name: "slow.bin", Body: pr})
		done <- err
	}()
	// Once the first chunk is taken, the first upload holds the link.
	_, err = pw.Write(sampleBytes(testChunk))
	require.NoError(t, err)
	_, err = pw.Write([]byte("more"))
	require.NoError(t, err)
	_, err = f.svc.StoreSample(ctx, casework.Upload{Token: link.Token, Name: "fast.bin", Body: strings.NewReader("x")})
	var le *casework.LinkError
	require.ErrorAs(t, err, &le)
	require.Equal(t, casework.LinkBusy, le.Problem)
	require.NoError(t, pw.Close())
	select {
	case err := <-done:
		require.NoError(t, err)
	case <-time.After(30 * time.Second):
		t.Fatal("the first upload did not finish")
	}
	require.Equal(t, 1, f.count(t, `SELECT count(*) FROM case_samples`))
}

// TestThreadFile: a file posted in a case thread is a sample like an
// upload: the requester's answers the wait, a redelivery stores nothing,
// another org cannot add to the case, an expert's does not resume it.
func TestThreadFile(t *testing.T) {
	t.Parallel()
	f := sampleSetup(t)
	ctx := context.Background()
	c := f.fileCase(t, "contoso", strings.Repeat("2", 64), casework.StatusMoreInfoNeeded)
	plain := sampleBytes(testChunk + 5)
	_, _, s256 := digests(plain)
	msg := casework.ChatRef{Platform: "slack", Workspace: "Tcontoso", Channel: "C0CONTOSOSOC", Message: "1712345678.000200"}
	up := casework.Upload{Ref: c.Ref, Source: casework.SourceThread, Actor: requester("contoso", "U-colleague"),
		Chat: msg, FileID: "F0SAMPLE1", Name: "dropper.js", Body: bytes.NewReader(plain)}
	smp, err := f.svc.StoreSample(ctx, up)
	require.NoError(t, err)
	require.False(t, smp.Repeated)
	require.Equal(t, casework.SourceThread, smp.Source)
	require.Equal(t, casework.SideRequester, smp.Side)
	require.Equal(t, "U-colleague", smp.Uploader.UserID)
	require.Equal(t, s256, smp.SHA256)
	require.Equal(t, casework.StatusInProgress, f.get(t, c.Ref).Status)
	evs := f.outboxPayloads(t, c.Ref, casework.EventSampleStored)
	require.Len(t, evs, 1)
	var ev casework.SampleStoredEvent
	require.NoError(t, json.Unmarshal(evs[0], &ev))
	require.Equal(t, &msg, ev.Chat)
	require.Equal(t, "F0SAMPLE1", ev.FileID)
	require.True(t, ev.Resumed)
	require.Equal(t, plain, f.download(t, c.Ref, smp.ID))

	// A redelivered event: the same file id stores nothing new.
	entries := len(f.kinds(t, c.Ref))
	up.Body = bytes.NewReader(plain)
	again, err := f.svc.StoreSample(ctx, up)
	require.NoError(t, err)
	require.True(t, again.Repeated)
	require.Equal(t, smp.ID, again.ID)
	require.Len(t, f.kinds(t, c.Ref), entries)
	require.Equal(t, 1, f.count(t, `SELECT count(*) FROM case_samples`))

	// Another org's member: as if the case did not exist.
	up.Actor, up.FileID, up.Body = requester("fabrikam", "U-other"), "F0OTHER", bytes.NewReader(plain)
	_, err = f.svc.StoreSample(ctx, up)
	require.ErrorIs(t, err, casework.ErrNotFound)

	// An expert's file on the desk side: stored, announced, no resume.
	_, err = f.svc.Transition(ctx, casework.TransitionRequest{Ref: c.Ref, To: casework.StatusFileSampleNeeded, Actor: expert("U-expert")})
	require.NoError(t, err)
	up.Actor, up.FileID, up.Body = expert("U-expert"), "F0TOOL", strings.NewReader("yara rule")
	up.Chat.Channel = "C0EXPERTDESK"
	tool, err := f.svc.StoreSample(ctx, up)
	require.NoError(t, err)
	require.Equal(t, casework.SideExpert, tool.Side)
	require.Equal(t, casework.StatusFileSampleNeeded, f.get(t, c.Ref).Status)

	// Thread files need their case, platform and file id.
	_, err = f.svc.StoreSample(ctx, casework.Upload{Source: casework.SourceThread, Ref: c.Ref, Actor: expert("U-expert"),
		Name: "x", Body: strings.NewReader("x")})
	require.ErrorIs(t, err, casework.ErrInvalid)
	require.NoError(t, f.svc.VerifyTimeline(ctx, casework.AllOrgs(), c.Ref))
}

// TestDownloadLinks: only experts get download links; members of any org
// get not-found; links expire; changed ciphertext does not decrypt.
func TestDownloadLinks(t *testing.T) {
	t.Parallel()
	f := sampleSetup(t)
	ctx := context.Background()
	c := f.fileCase(t, "contoso", strings.Repeat("3", 64), casework.StatusFileSampleNeeded)
	link, err := f.svc.IssueUploadLink(ctx, c.Ref, casework.System())
	require.NoError(t, err)
	plain := sampleBytes(3*testChunk + 7)
	smp, err := f.svc.StoreSample(ctx, casework.Upload{Token: link.Token, Name: "a.bin", Body: bytes.NewReader(plain)})
	require.NoError(t, err)

	for _, a := range []casework.Actor{requester("contoso", "U-analyst"), requester("fabrikam", "U-other")} {
		_, err := f.svc.IssueDownloadLink(ctx, c.Ref, smp.ID, a)
		require.ErrorIs(t, err, casework.ErrNotFound)
	}
	_, err = f.svc.IssueDownloadLink(ctx, c.Ref, smp.ID, manager("U-manager"))
	require.ErrorIs(t, err, casework.ErrInvalid)
	require.ErrorContains(t, err, "only threat experts")
	_, err = f.svc.IssueDownloadLink(ctx, c.Ref, smp.ID+100, expert("U-expert"))
	require.ErrorIs(t, err, casework.ErrNotFound)
	other := f.into(t, "contoso", casework.StatusInProgress)
	_, err = f.svc.IssueDownloadLink(ctx, other.Ref, smp.ID, expert("U-expert"))
	require.ErrorIs(t, err, casework.ErrNotFound, "a sample is reached through its own case only")

	dl, err := f.svc.IssueDownloadLink(ctx, c.Ref, smp.ID, expert("U-expert"))
	require.NoError(t, err)
	require.Equal(t, t0.Add(casework.DownloadLinkTTL), dl.ExpiresAt)
	// One download per link, recorded: the second is refused, so that
	// whoever holds the URL afterwards cannot fetch it as the expert.
	d, err := f.svc.OpenSample(ctx, dl.Token, "203.0.113.9", nil)
	require.NoError(t, err)
	b, err := io.ReadAll(d.Body)
	require.NoError(t, err)
	require.Equal(t, plain, b)
	require.NoError(t, d.Body.Close())
	_, err = f.svc.OpenSample(ctx, dl.Token, "198.51.100.66", nil)
	var le *casework.LinkError
	require.ErrorAs(t, err, &le)
	require.Equal(t, casework.LinkDownloaded, le.Problem)
	require.Contains(t, err.Error(), "each link works once")
	n := 0
	for _, k := range f.kinds(t, c.Ref) {
		if k == casework.EventSampleDownloaded {
			n++
		}
	}
	require.Equal(t, 1, n)
	dl, err = f.svc.IssueDownloadLink(ctx, c.Ref, smp.ID, expert("U-expert"))
	require.NoError(t, err)
	f.clock.Advance(casework.DownloadLinkTTL)
	_, err = f.svc.OpenSample(ctx, dl.Token, "", nil)
	require.ErrorAs(t, err, &le)
	require.Equal(t, casework.LinkExpired, le.Problem)

	// Tampering with the stored chunks: each is caught while reading.
	read := func() error {
		dl, err := f.svc.IssueDownloadLink(ctx, c.Ref, smp.ID, expert("U-expert"))
		require.NoError(t, err)
		d, err := f.svc.OpenSample(ctx, dl.Token, "", nil)
		require.NoError(t, err)
		_, err = io.Copy(io.Discard, d.Body)
		return err
	}
	require.NoError(t, read())
	exec := func(sql string, args ...any) {
		_, err := f.pool.Exec(ctx, sql, args...)
		require.NoError(t, err)
	}
	// A flipped bit.
	exec(`UPDATE case_sample_chunks SET data = overlay(data placing '\xff'::bytea from 40 for 1) WHERE sample_id = $1 AND seq = 1`, smp.ID)
	require.ErrorContains(t, read(), "chunk 1 does not decrypt")
	// Two chunks swapped.
	f2 := sampleSetup(t)
	c2 := f2.fileCase(t, "contoso", strings.Repeat("3", 64), casework.StatusInProgress)
	l2, err := f2.svc.IssueUploadLink(ctx, c2.Ref, casework.System())
	require.NoError(t, err)
	s2, err := f2.svc.StoreSample(ctx, casework.Upload{Token: l2.Token, Name: "a.bin", Body: bytes.NewReader(plain)})
	require.NoError(t, err)
	read2 := func() error {
		dl, err := f2.svc.IssueDownloadLink(ctx, c2.Ref, s2.ID, expert("U-expert"))
		require.NoError(t, err)
		d, err := f2.svc.OpenSample(ctx, dl.Token, "", nil)
		require.NoError(t, err)
		_, err = io.Copy(io.Discard, d.Body)
		return err
	}
	_, err = f2.pool.Exec(ctx, `UPDATE case_sample_chunks SET seq = seq + 100 WHERE sample_id = $1 AND seq IN (0, 1)`, s2.ID)
	require.NoError(t, err)
	_, err = f2.pool.Exec(ctx, `UPDATE case_sample_chunks SET seq = CASE seq WHEN 100 THEN 1 ELSE 0 END WHERE sample_id = $1 AND seq IN (100, 101)`, s2.ID)
	require.NoError(t, err)
	require.ErrorContains(t, read2(), "chunk 0 does not decrypt")
	_, err = f2.pool.Exec(ctx, `UPDATE case_sample_chunks SET seq = seq + 100 WHERE sample_id = $1 AND seq IN (0, 1)`, s2.ID)
	require.NoError(t, err)
	_, err = f2.pool.Exec(ctx, `UPDATE case_sample_chunks SET seq = CASE seq WHEN 100 THEN 1 ELSE 0 END WHERE sample_id = $1 AND seq IN (100, 101)`, s2.ID)
	require.NoError(t, err)
	require.NoError(t, read2(), "swapped back")
	// The tail dropped, and the row edited to match: the new last chunk was not sealed as the last.
	_, err = f2.pool.Exec(ctx, `DELETE FROM case_sample_chunks WHERE sample_id = $1 AND seq = 3`, s2.ID)
	require.NoError(t, err)
	_, err = f2.pool.Exec(ctx, `UPDATE case_samples SET chunk_count = 3 WHERE id = $1`, s2.ID)
	require.NoError(t, err)
	require.ErrorContains(t, read2(), "chunk 2 does not decrypt")
}

// TestChunksAreBoundToTheirPlace: a chunk opens only with its sample, index
// and final flag, under the sample subkey.
func TestChunksAreBoundToTheirPlace(t *testing.T) {
	t.Parallel()
	f := sampleSetup(t)
	ctx := context.Background()
	c := f.into(t, "contoso", casework.StatusInProgress)
	link, err := f.svc.IssueUploadLink(ctx, c.Ref, casework.System())
	require.NoError(t, err)
	smp, err := f.svc.StoreSample(ctx, casework.Upload{Token: link.Token, Name: "a", Body: strings.NewReader("hello sample")})
	require.NoError(t, err)
	chunks := f.chunks(t)
	require.Len(t, chunks, 1)
	key := f.cfg.Key
	plain, err := key.Open(secrets.PurposeSampleEncryption, chunks[0], casework.SampleChunkAAD(smp.ID, 0, true))
	require.NoError(t, err)
	require.Equal(t, "hello sample", string(plain))
	for _, aad := range [][]byte{casework.SampleChunkAAD(smp.ID, 0, false), casework.SampleChunkAAD(smp.ID+1, 0, true),
		casework.SampleChunkAAD(smp.ID, 1, true)} {
		_, err := key.Open(secrets.PurposeSampleEncryption, chunks[0], aad)
		require.ErrorIs(t, err, secrets.ErrOpen)
	}
	_, err = key.Open(secrets.PurposeTokenEncryption, chunks[0], casework.SampleChunkAAD(smp.ID, 0, true))
	require.ErrorIs(t, err, secrets.ErrOpen)
}

func TestIssueUploadLinkScope(t *testing.T) {
	t.Parallel()
	f := sampleSetup(t)
	ctx := context.Background()
	c := f.into(t, "contoso", casework.StatusInProgress)
	_, err := f.svc.IssueUploadLink(ctx, c.Ref, requester("fabrikam", "U-other"))
	require.ErrorIs(t, err, casework.ErrNotFound)
	for _, a := range []casework.Actor{requester("contoso", "U-colleague"), expert("U-expert"), manager("U-manager"), casework.System()} {
		l, err := f.svc.IssueUploadLink(ctx, c.Ref, a)
		require.NoError(t, err, a.Role)
		require.Len(t, l.Link, 12)
	}
	require.Equal(t, 4, f.count(t, `SELECT count(*) FROM case_upload_links`))
	var stored []byte
	require.NoError(t, f.pool.QueryRow(ctx, `SELECT token_hash FROM case_upload_links LIMIT 1`).Scan(&stored))
	require.Len(t, stored, sha256.Size, "only the token's SHA-256 is kept")
	_, err = f.svc.Transition(ctx, casework.TransitionRequest{Ref: c.Ref, To: casework.StatusConcluded, Actor: expert("U-expert"), Summary: "ok"})
	require.NoError(t, err)
	_, err = f.svc.IssueUploadLink(ctx, c.Ref, requester("contoso", "U-analyst"))
	var te *casework.TransitionError
	require.ErrorAs(t, err, &te)
	require.Equal(t, c.Ref+" is concluded: samples can be sent while a case is open", te.Error())
}

// TestSamplesOfACaseHaveABudget: samples.max_bytes bounds one file, but
// links and thread files are not counted: one member could fill the
// database with the same file again and again. The samples of a case take
// at most samples.case_max_bytes in all; a deleted sample's bytes are
// free again.
func TestSamplesOfACaseHaveABudget(t *testing.T) {
	t.Parallel()
	f := sampleSetup(t, func(c *casework.Config) {
		c.SampleMaxBytes, c.SampleCaseMaxBytes = 3*testChunk, 5*testChunk
		c.SampleRetention = time.Hour
	})
	ctx := context.Background()
	c := f.into(t, "contoso", casework.StatusInProgress)
	store := func(n int) error {
		t.Helper()
		link, err := f.svc.IssueUploadLink(ctx, c.Ref, casework.System())
		require.NoError(t, err)
		_, err = f.svc.StoreSample(ctx, casework.Upload{Token: link.Token, Name: "a.bin", Body: bytes.NewReader(sampleBytes(n))})
		return err
	}
	require.NoError(t, store(2*testChunk))
	require.NoError(t, store(2*testChunk))
	err := store(2 * testChunk)
	var tl *casework.TooLargeError
	require.ErrorAs(t, err, &tl, "past the case's budget")
	require.True(t, tl.Case)
	require.Equal(t, int64(4*testChunk), tl.Stored)
	require.Contains(t, err.Error(), "would take more than its limit of 20 KiB in all (16 KiB stored already); nothing was stored")
	require.NoError(t, store(testChunk), "what still fits is taken")
	err = store(1)
	require.ErrorAs(t, err, &tl, "a full case refuses before reading")
	require.Equal(t, 3, f.count(t, `SELECT count(*) FROM case_samples`))

	// Closed, its samples deleted by retention, reopened: room again.
	_, err = f.svc.Transition(ctx, casework.TransitionRequest{Ref: c.Ref, To: casework.StatusConcluded, Actor: expert("U-expert"), Summary: "ok"})
	require.NoError(t, err)
	_, err = f.svc.Transition(ctx, casework.TransitionRequest{Ref: c.Ref, To: casework.StatusClosed, Actor: requester("contoso", "U-analyst")})
	require.NoError(t, err)
	f.clock.Advance(2 * time.Hour)
	_, err = f.svc.SweepSamples(ctx)
	require.NoError(t, err)
	require.Zero(t, f.count(t, `SELECT count(*) FROM case_samples WHERE deleted_at IS NULL`))
	_, err = f.svc.Transition(ctx, casework.TransitionRequest{Ref: c.Ref, To: casework.StatusInProgress, Actor: requester("contoso", "U-analyst")})
	require.NoError(t, err)
	require.NoError(t, store(3*testChunk))
}

// TestUploadToAClosedCase: a link whose case was closed since stores nothing.
func TestUploadToAClosedCase(t *testing.T) {
	t.Parallel()
	f := sampleSetup(t)
	ctx := context.Background()
	c := f.into(t, "contoso", casework.StatusInProgress)
	link, err := f.svc.IssueUploadLink(ctx, c.Ref, casework.System())
	require.NoError(t, err)
	_, err = f.svc.Transition(ctx, casework.TransitionRequest{Ref: c.Ref, To: casework.StatusWithdrawn, Actor: requester("contoso", "U-analyst")})
	require.NoError(t, err)
	_, err = f.svc.StoreSample(ctx, casework.Upload{Token: link.Token, Name: "a", Body: strings.NewReader("x")})
	var le *casework.LinkError
	require.ErrorAs(t, err, &le)
	require.Equal(t, casework.LinkCaseClosed, le.Problem)
	require.Equal(t, casework.StatusWithdrawn, le.Status, "the page says withdrawn: nothing reopens it")
	_, err = f.svc.UploadLinkInfo(ctx, link.Token)
	require.ErrorAs(t, err, &le)
	require.Equal(t, "the case of this link was withdrawn", le.Error())
	// A file posted in its thread is told what can be done: a withdrawn
	// case cannot be reopened (it said "reopen it").
	_, err = f.svc.StoreSample(ctx, casework.Upload{Ref: c.Ref, Source: casework.SourceThread, Actor: requester("contoso", "U-analyst"),
		Chat:   casework.ChatRef{Platform: "slack", Workspace: "Tcontoso", Channel: "C0CONTOSOSOC", Message: "1712345678.000900"},
		FileID: "F0LATE", Name: "late.bin", Body: strings.NewReader("x")})
	var te *casework.TransitionError
	require.ErrorAs(t, err, &te)
	require.Contains(t, te.Error(), c.Ref+" was withdrawn; to have a file looked at, ask in a new case")
	require.Zero(t, f.count(t, `SELECT count(*) FROM case_samples`))
}

// TestSampleRetention: the bytes go SampleRetention after the case closed,
// recorded on the timeline; a reopened case keeps them.
func TestSampleRetention(t *testing.T) {
	t.Parallel()
	f := sampleSetup(t)
	ctx := context.Background()
	store := func(c *casework.Case) *casework.Sample {
		t.Helper()
		link, err := f.svc.IssueUploadLink(ctx, c.Ref, casework.System())
		require.NoError(t, err)
		smp, err := f.svc.StoreSample(ctx, casework.Upload{Token: link.Token, Name: "a.bin", Body: bytes.NewReader(sampleBytes(2 * testChunk))})
		require.NoError(t, err)
		return smp
	}
	closed := f.into(t, "contoso", casework.StatusInProgress)
	gone := store(closed)
	reopened := f.into(t, "contoso", casework.StatusInProgress)
	kept := store(reopened)
	open := f.into(t, "contoso", casework.StatusInProgress)
	store(open)
	dl, err := f.svc.IssueDownloadLink(ctx, closed.Ref, gone.ID, expert("U-expert"))
	require.NoError(t, err)
	for _, c := range []*casework.Case{closed, reopened} {
		for _, st := range []casework.Status{casework.StatusConcluded, casework.StatusClosed} {
			a := expert("U-expert")
			if st == casework.StatusClosed {
				a = requester("contoso", "U-analyst")
			}
			_, err := f.svc.Transition(ctx, casework.TransitionRequest{Ref: c.Ref, To: st, Actor: a, Summary: "done"})
			require.NoError(t, err)
		}
	}
	// Reopened the next day (within the reopen window): its samples stay.
	f.clock.Advance(24 * time.Hour)
	_, err = f.svc.Transition(ctx, casework.TransitionRequest{Ref: reopened.Ref, To: casework.StatusInProgress,
		Actor: requester("contoso", "U-analyst")})
	require.NoError(t, err)
	f.clock.Advance(casework.DefaultSampleRetention - 24*time.Hour - time.Minute)
	res, err := f.svc.SweepSamples(ctx)
	require.NoError(t, err)
	require.Zero(t, res.Deleted, "not yet")

	f.clock.Advance(time.Minute)
	res, err = f.svc.SweepSamples(ctx)
	require.NoError(t, err)
	require.Equal(t, 1, res.Deleted)
	require.Zero(t, f.count(t, `SELECT count(*) FROM case_sample_chunks WHERE sample_id = $1`, gone.ID))
	require.NotZero(t, f.count(t, `SELECT count(*) FROM case_sample_chunks WHERE sample_id = $1`, kept.ID))
	tl, err := f.svc.Timeline(ctx, casework.AllOrgs(), closed.Ref)
	require.NoError(t, err)
	last := tl[len(tl)-1]
	require.Equal(t, casework.EventSampleDeleted, last.Kind)
	require.Equal(t, casework.RoleSystem, last.Actor.Role)
	var del casework.SampleDeletedEvent
	require.NoError(t, json.Unmarshal(last.Detail, &del))
	require.Equal(t, gone.SHA256, del.SHA256)
	require.Equal(t, "retention: 30 days after the case was closed", del.Reason)
	require.NoError(t, f.svc.VerifyTimeline(ctx, casework.AllOrgs(), closed.Ref))

	list, err := f.svc.Samples(ctx, casework.AllOrgs(), closed.Ref)
	require.NoError(t, err)
	require.Len(t, list, 1)
	require.NotNil(t, list[0].DeletedAt)
	_, err = f.svc.IssueDownloadLink(ctx, closed.Ref, gone.ID, expert("U-expert"))
	require.ErrorIs(t, err, casework.ErrInvalid)
	require.ErrorContains(t, err, "was deleted on")
	_, err = f.svc.OpenSample(ctx, dl.Token, "", nil)
	var le *casework.LinkError
	require.ErrorAs(t, err, &le)
	require.Equal(t, casework.LinkUnknown, le.Problem, "its download links went with it")

	// A second sweep finds nothing more; links are forgotten once expired for the retention.
	res, err = f.svc.SweepSamples(ctx)
	require.NoError(t, err)
	require.Zero(t, res.Deleted)
	require.Zero(t, res.LinksForgotten)
	f.clock.Advance(casework.UploadLinkTTL)
	res, err = f.svc.SweepSamples(ctx)
	require.NoError(t, err)
	require.Equal(t, casework.SampleSweepResult{LinksForgotten: 3}, res)
}

// TestStartRunsTheSampleSweep: the retention sweep is one of Start's jobs.
func TestStartRunsTheSampleSweep(t *testing.T) {
	t.Parallel()
	f := sampleSetup(t)
	ctx := context.Background()
	c := f.into(t, "contoso", casework.StatusInProgress)
	link, err := f.svc.IssueUploadLink(ctx, c.Ref, casework.System())
	require.NoError(t, err)
	_, err = f.svc.StoreSample(ctx, casework.Upload{Token: link.Token, Name: "a", Body: strings.NewReader("x")})
	require.NoError(t, err)
	_, err = f.svc.Transition(ctx, casework.TransitionRequest{Ref: c.Ref, To: casework.StatusWithdrawn, Actor: requester("contoso", "U-analyst")})
	require.NoError(t, err)
	f.clock.Advance(casework.DefaultSampleRetention)
	require.NoError(t, f.svc.Start(ctx))
	t.Cleanup(func() { require.NoError(t, f.svc.Stop()) })
	require.Eventually(t, func() bool {
		return f.count(t, `SELECT count(*) FROM case_samples WHERE deleted_at IS NOT NULL`) == 1
	}, 30*time.Second, 20*time.Millisecond)
	kinds := f.kinds(t, c.Ref)
	require.Equal(t, casework.EventSampleDeleted, kinds[len(kinds)-1])
}

func TestSampleConfig(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		cfg  casework.Config
		want string
	}{
		{name: "too large", cfg: casework.Config{SampleMaxBytes: casework.MaxSampleMaxBytes + 1}, want: "samples.max_bytes 1073741825 must be between 1 and 1073741824"},
		{name: "negative", cfg: casework.Config{SampleMaxBytes: -1}, want: "samples.max_bytes"},
		{name: "case budget under one file", cfg: casework.Config{SampleMaxBytes: 4096, SampleCaseMaxBytes: 1024}, want: "samples.case_max_bytes 1024 must be between samples.max_bytes (4096)"},
		{name: "retention too short", cfg: casework.Config{SampleRetention: time.Minute}, want: "cases.sample_retention"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tc.cfg.Key = testKey(t)
			_, err := casework.New(pgtestPoolStub(t), tc.cfg, nil, nil)
			require.ErrorContains(t, err, tc.want)
		})
	}
	svc, err := casework.New(pgtestPoolStub(t), casework.Config{Key: testKey(t)}, nil, nil)
	require.NoError(t, err)
	require.Equal(t, casework.DefaultSampleMaxBytes, svc.Config().SampleMaxBytes)
	require.Equal(t, casework.DefaultSampleRetention, svc.Config().SampleRetention)
}

func TestFormatBytes(t *testing.T) {
	t.Parallel()
	for n, want := range map[int64]string{0: "0 bytes", 1: "1 byte", 1023: "1023 bytes", 1024: "1 KiB", 1536: "1.5 KiB",
		100 << 20: "100 MiB", 1 << 30: "1 GiB"} {
		require.Equal(t, want, casework.FormatBytes(n))
	}
}

// TestStalledUploadsOfOneOrgLeaveOthersASlot: four stalled uploads of one
// org held every store slot of the Service (for as long as the web's
// transfer timeout), and another org's samples, uploads and thread files
// alike, waited until they gave up. Now an org holds at most its share.
func TestStalledUploadsOfOneOrgLeaveOthersASlot(t *testing.T) {
	t.Parallel()
	f := sampleSetup(t)
	ctx := context.Background()
	var writers []*io.PipeWriter
	done := make(chan error, casework.MaxConcurrentSampleStores)
	fed := make(chan struct{}, casework.MaxConcurrentSampleStores)
	for i := range casework.MaxConcurrentSampleStores {
		c := f.fileCase(t, "contoso", strings.Repeat(fmt.Sprint(i), 64), casework.StatusFileSampleNeeded)
		link, err := f.svc.IssueUploadLink(ctx, c.Ref, casework.System())
		require.NoError(t, err)
		pr, pw := io.Pipe()
		writers = append(writers, pw)
		go func() {
			_, err := f.svc.StoreSample(ctx, casework.Upload{Token: link.Token, Name: "stalled.bin", Body: pr})
			done <- err
		}()
		go func() {
			if _, err := pw.Write([]byte("x")); err == nil {
				fed <- struct{}{}
			}
		}()
	}
	t.Cleanup(func() {
		for _, pw := range writers {
			pw.CloseWithError(errors.New("client went away"))
		}
		for range writers {
			<-done
		}
	})
	// The org's share is streaming (and stalled).
	for range casework.MaxConcurrentSampleStoresPerOrg {
		select {
		case <-fed:
		case <-time.After(30 * time.Second):
			t.Fatal("no stalled upload started")
		}
	}

	other := f.fileCase(t, "fabrikam", strings.Repeat("f", 64), casework.StatusFileSampleNeeded)
	link, err := f.svc.IssueUploadLink(ctx, other.Ref, casework.System())
	require.NoError(t, err)
	wctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	smp, err := f.svc.StoreSample(wctx, casework.Upload{Token: link.Token, Name: "fine.bin", Body: strings.NewReader("sample")})
	require.NoError(t, err, "another org's upload is not held up")
	require.Equal(t, int64(6), smp.Size)
}

// TestMemberRecordLeavesOutTheDesk: a member's export carried the network
// address an expert downloaded the sample from and the desk's chat message
// of a file an expert posted. The member's record leaves those fields out
// (and says so); the customer's own upload keeps its details; the desk's
// record keeps everything.
func TestMemberRecordLeavesOutTheDesk(t *testing.T) {
	t.Parallel()
	f := sampleSetup(t)
	ctx := context.Background()
	c := f.fileCase(t, "contoso", strings.Repeat("3", 64), casework.StatusMoreInfoNeeded)
	own := casework.ChatRef{Platform: "slack", Workspace: "Tcontoso", Channel: "C0CONTOSOSOC", Message: "1712345678.000300"}
	smp, err := f.svc.StoreSample(ctx, casework.Upload{Ref: c.Ref, Source: casework.SourceThread, Actor: requester("contoso", "U-analyst"),
		Chat: own, FileID: "F0THEIRS", Name: "dropper.js", Body: strings.NewReader("payload")})
	require.NoError(t, err)
	desk := casework.ChatRef{Platform: "slack", Workspace: "TDESK", Channel: "C0EXPERTDESK", Message: "1712345678.000400"}
	_, err = f.svc.StoreSample(ctx, casework.Upload{Ref: c.Ref, Source: casework.SourceThread, Actor: expert("U-expert"),
		Chat: desk, FileID: "F0DESKTOOL", Name: "rule.yar", Body: strings.NewReader("rule x {}")})
	require.NoError(t, err)
	f.download(t, c.Ref, smp.ID) // from 192.0.2.7

	member, err := f.svc.Export(ctx, casework.OrgViewer("contoso"), c.Ref, false)
	require.NoError(t, err)
	text, err := json.Marshal(member)
	require.NoError(t, err)
	for _, secret := range []string{"192.0.2.7", "C0EXPERTDESK", "F0DESKTOOL", "1712345678.000400"} {
		require.NotContains(t, string(text), secret)
	}
	require.Contains(t, string(text), "F0THEIRS", "the customer's own file keeps its reference")
	var redacted []string
	for _, e := range member.Timeline {
		redacted = append(redacted, e.Redacted...)
	}
	require.ElementsMatch(t, []string{"address", "chat", "file_id"}, redacted)
	require.True(t, member.Verification.Intact, "the chain is checked on the stored entries")

	all, err := f.svc.Export(ctx, casework.AllOrgs(), c.Ref, true)
	require.NoError(t, err)
	text, err = json.Marshal(all)
	require.NoError(t, err)
	require.Contains(t, string(text), "192.0.2.7")
	require.Contains(t, string(text), "F0DESKTOOL")
}

// stalledBody sends some bytes, then blocks until released.
type stalledBody struct {
	sent    bool
	stalled chan struct{} // closed once it stalls
	release chan struct{}
}

func (b *stalledBody) Read(p []byte) (int, error) {
	if !b.sent {
		b.sent = true
		return copy(p, bytes.Repeat([]byte("x"), 4096)), nil
	}
	close(b.stalled)
	<-b.release
	return 0, io.EOF
}

// TestSlowUploadDoesNotHoldTheCase: while an upload's bytes trickle in,
// the case's conversation goes on (an expert's message, a status change, a
// new link), and a second upload into the same case is stored too. The
// sample's row took a key-share lock on its case (a foreign key) that every
// case change's FOR UPDATE waited for: a slow upload froze the case for up
// to half an hour, and two uploads deadlocked.
func TestSlowUploadDoesNotHoldTheCase(t *testing.T) {
	t.Parallel()
	f := setup(t)
	ctx := context.Background()
	c := f.open(t, "contoso")
	link, err := f.svc.IssueUploadLink(ctx, c.Ref, casework.System())
	require.NoError(t, err)
	body := &stalledBody{stalled: make(chan struct{}), release: make(chan struct{})}
	stored := make(chan error, 1)
	go func() {
		_, err := f.svc.StoreSample(ctx, casework.Upload{Token: link.Token, Name: "slow.bin", Body: body})
		stored <- err
	}()
	released := false
	release := func() {
		if !released {
			released = true
			close(body.release)
		}
	}
	t.Cleanup(release)
	<-body.stalled

	quick, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	_, err = f.svc.AddMessage(quick, casework.MessageRequest{Ref: c.Ref, Actor: expert("U-e"), Side: casework.SideExpert, Text: "still there?"})
	require.NoError(t, err, "the case's conversation goes on during the upload")
	second, err := f.svc.IssueUploadLink(quick, c.Ref, casework.System())
	require.NoError(t, err)
	_, err = f.svc.StoreSample(quick, casework.Upload{Token: second.Token, Name: "quick.bin", Body: bytes.NewReader([]byte("quick"))})
	require.NoError(t, err, "a second upload into the case")

	release()
	require.NoError(t, <-stored, "and the slow one is stored too")
	smps, err := f.svc.Samples(ctx, casework.AllOrgs(), c.Ref)
	require.NoError(t, err)
	require.Len(t, smps, 2)
}

// TestRetentionWaitsForADownloadUnderWay: a sample whose retention runs out
// while an expert's download of it is streaming is deleted by a later
// sweep, not from under the download (which ended short, recorded as
// downloaded).
func TestRetentionWaitsForADownloadUnderWay(t *testing.T) {
	t.Parallel()
	f := sampleSetup(t)
	ctx := context.Background()
	c := f.into(t, "contoso", casework.StatusInProgress)
	link, err := f.svc.IssueUploadLink(ctx, c.Ref, casework.System())
	require.NoError(t, err)
	plain := sampleBytes(4 * testChunk)
	smp, err := f.svc.StoreSample(ctx, casework.Upload{Token: link.Token, Name: "a.bin", Body: bytes.NewReader(plain)})
	require.NoError(t, err)
	for _, st := range []struct {
		to casework.Status
		a  casework.Actor
	}{{casework.StatusConcluded, expert("U-expert")}, {casework.StatusClosed, requester("contoso", "U-analyst")}} {
		_, err := f.svc.Transition(ctx, casework.TransitionRequest{Ref: c.Ref, To: st.to, Actor: st.a, Summary: "done"})
		require.NoError(t, err)
	}
	f.clock.Advance(casework.DefaultSampleRetention - time.Minute)
	dl, err := f.svc.IssueDownloadLink(ctx, c.Ref, smp.ID, expert("U-expert"))
	require.NoError(t, err)
	d, err := f.svc.OpenSample(ctx, dl.Token, "203.0.113.9", nil)
	require.NoError(t, err)
	first := make([]byte, 10)
	_, err = io.ReadFull(d.Body, first)
	require.NoError(t, err)

	f.clock.Advance(2 * time.Minute) // retention has run out
	res, err := f.svc.SweepSamples(ctx)
	require.NoError(t, err)
	require.Zero(t, res.Deleted, "the download is under way")
	rest, err := io.ReadAll(d.Body)
	require.NoError(t, err)
	require.NoError(t, d.Body.Close())
	require.Equal(t, plain, append(first, rest...), "downloaded whole")

	f.clock.Advance(time.Hour)
	res, err = f.svc.SweepSamples(ctx)
	require.NoError(t, err)
	require.Equal(t, 1, res.Deleted, "deleted by a later sweep")
}
