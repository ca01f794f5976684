// Package bottest holds test doubles for the bot's contracts: a recording
// Adapter that can be told to fail like a real platform (429, 500, a
// permanent error), and a recording Responder. The bot's own tests use them,
// and adapter tests may too, to compare a real adapter with the fake.
package bottest

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"sync"
	"time"

	"github.com/threatdesk/threatdesk/bot"
	"github.com/threatdesk/threatdesk/internal/testwait"
)

// Op names a recorded call.
type Op string

// Recorded operations.
const (
	OpPost    Op = "post"
	OpUpdate  Op = "update"
	OpPrivate Op = "private"
	OpForm    Op = "form"
	// OpFind is a FindPosted call (Ref is what it found, if anything).
	OpFind Op = "find"
	// OpRespond is an answer through a Responder the adapter rebuilt after
	// a restart (Resume).
	OpRespond Op = "respond"
	// OpFetch is a FetchFile call that succeeded (File is what it fetched).
	OpFetch Op = "fetch"
	// OpOpenDirect opens a direct conversation (UserID; Ref.Channel is the
	// conversation, DirectChannel(UserID)). Messages there are OpPost calls.
	OpOpenDirect Op = "open direct"
)

// Call is one recorded adapter call that succeeded.
type Call struct {
	Op      Op
	Dest    bot.Dest    // Post, PostPrivate, FindPosted
	Ref     bot.Ref     // the posted or updated message
	UserID  string      // PostPrivate
	Message bot.Message // Post, Update, PostPrivate
	Trigger string      // OpenForm
	Form    bot.Form    // OpenForm
	// Responder is the id of the Responder a Respond call was rebuilt from,
	// and Private its privacy.
	Responder string
	Private   bool
	// File is what a FetchFile call fetched.
	File bot.File
	At   time.Time
}

// Adapter is a recording fake bot.Adapter. It is safe for concurrent use.
type Adapter struct {
	platform  bot.Platform
	workspace string

	mu       sync.Mutex
	seq      int
	calls    []Call
	failures []error
	lose     int
	names    map[string]string
	// slowNames are users whose name lookups take that long.
	slowNames map[string]time.Duration
	changed   testwait.Signal
	// files are the bytes FetchFile serves, by URL; fetchFailures its
	// queued failures.
	files map[string][]byte
	holds map[string]chan struct{}
	// postHolds are channels whose posts wait for their release.
	postHolds     map[string]chan struct{}
	fetchFailures []error
	// unreachable are users OpenDirect refuses (direct.go).
	unreachable map[string]bool
	// gone are users deactivated, and left the channels users left
	// ("channel/user"), for Present.
	gone, left   map[string]bool
	presentErr   error
	presentCalls int
}

var (
	_ bot.Adapter         = (*Adapter)(nil)
	_ bot.Resumer         = (*Adapter)(nil)
	_ bot.FileFetcher     = (*Adapter)(nil)
	_ bot.DirectMessenger = (*Adapter)(nil)
	_ bot.Permalinker     = (*Adapter)(nil)
	_ bot.Presence        = (*Adapter)(nil)
)

// New returns a fake adapter for platform p whose refs carry workspace.
func New(p bot.Platform, workspace string) *Adapter {
	return &Adapter{platform: p, workspace: workspace, names: map[string]string{}, slowNames: map[string]time.Duration{}, files: map[string][]byte{}, unreachable: map[string]bool{},
		gone: map[string]bool{}, left: map[string]bool{}}
}

// AddFile makes FetchFile serve body for a file whose URL is url.
func (a *Adapter) AddFile(url string, body []byte) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.files[url] = body
}

// HoldFile makes the bodies FetchFile serves for url stop before their
// last byte until release is called, as a slow download does.
func (a *Adapter) HoldFile(url string) (release func()) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.holds == nil {
		a.holds = map[string]chan struct{}{}
	}
	ch := make(chan struct{})
	a.holds[url] = ch
	var once sync.Once
	return func() { once.Do(func() { close(ch) }) }
}

// HoldPosts makes posts to channel wait, unanswered, until release is
// called (or their context ends): a post on its way while something else
// happens.
func (a *Adapter) HoldPosts(channel string) (release func()) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.postHolds == nil {
		a.postHolds = map[string]chan struct{}{}
	}
	ch := make(chan struct{})
	a.postHolds[channel] = ch
	var once sync.Once
	return func() { once.Do(func() { close(ch) }) }
}

// FailFetch queues errors: the next FetchFile calls return them in order,
// each once.
func (a *Adapter) FailFetch(errs ...error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.fetchFailures = append(a.fetchFailures, errs...)
}

// FetchFile implements bot.FileFetcher: the bytes added for f.URL; a file
// never added is a permanent not found, as a deleted file is.
func (a *Adapter) FetchFile(ctx context.Context, at bot.Ref, f bot.File) (io.ReadCloser, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if len(a.fetchFailures) > 0 {
		err := a.fetchFailures[0]
		a.fetchFailures = a.fetchFailures[1:]
		return nil, err
	}
	body, ok := a.files[f.URL]
	if !ok {
		return nil, Permanent("file_not_found")
	}
	a.record(Call{Op: OpFetch, Ref: at, File: f})
	if hold, ok := a.holds[f.URL]; ok && len(body) > 0 {
		return io.NopCloser(io.MultiReader(bytes.NewReader(body[:len(body)-1]), &held{ctx: ctx, hold: hold, last: body[len(body)-1:]})), nil
	}
	return io.NopCloser(bytes.NewReader(body)), nil
}

// held yields its last bytes once released (or fails when ctx ends).
type held struct {
	ctx  context.Context
	hold chan struct{}
	last []byte
}

func (h *held) Read(p []byte) (int, error) {
	select {
	case <-h.hold:
	case <-h.ctx.Done():
		return 0, h.ctx.Err()
	}
	if len(h.last) == 0 {
		return 0, io.EOF
	}
	n := copy(p, h.last)
	h.last = h.last[n:]
	return n, nil
}

// Fail queues errors: the next Post or Update calls return them in order,
// each once, before calls succeed again.
func (a *Adapter) Fail(errs ...error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.failures = append(a.failures, errs...)
}

// SetName sets a user's display name for UserName.
func (a *Adapter) SetName(userID, name string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.names[userID] = name
}

// SetNameDelay makes UserName take d for userID, as a lookup the platform
// answers slowly.
func (a *Adapter) SetNameDelay(userID string, d time.Duration) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.slowNames[userID] = d
}

// RateLimited is a 429 asking to wait d, as an adapter reports it.
func RateLimited(d time.Duration) error {
	return bot.RateLimitError(d, errors.New("HTTP 429"))
}

// ServerError is a 5xx, retried with backoff.
func ServerError() error {
	return &bot.DeliveryError{Kind: bot.Temporary, Code: "500", Err: errors.New("HTTP 500 internal server error")}
}

// Permanent is a failure no retry fixes, such as "channel_not_found".
func Permanent(code string) error {
	return bot.PermanentError(code, "invite the bot to the channel or fix the channel id in the config", errors.New(code))
}

// LoseAnswers makes the next n Posts act like a platform that stored the
// message but whose answer never arrived (a dropped connection, a process
// killed mid-call): the post is recorded and Post returns a timeout.
func (a *Adapter) LoseAnswers(n int) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.lose += n
}

func (a *Adapter) next() error {
	if len(a.failures) == 0 {
		return nil
	}
	err := a.failures[0]
	a.failures = a.failures[1:]
	return err
}

func (a *Adapter) record(c Call) {
	c.At = time.Now()
	a.calls = append(a.calls, c)
	a.changed.Notify()
}

// Subscribe implements testwait.Source: it signals after every call the
// adapter records.
func (a *Adapter) Subscribe() (<-chan struct{}, func()) { return a.changed.Subscribe() }

// Platform implements bot.Adapter.
func (a *Adapter) Platform() bot.Platform { return a.platform }

// Post implements bot.Adapter: it records m and returns a fresh ref.
func (a *Adapter) Post(ctx context.Context, dest bot.Dest, m bot.Message) (bot.Ref, error) {
	if err := ctx.Err(); err != nil {
		return bot.Ref{}, err
	}
	a.mu.Lock()
	hold := a.postHolds[dest.Channel]
	a.mu.Unlock()
	if hold != nil {
		select {
		case <-hold:
		case <-ctx.Done():
			return bot.Ref{}, fmt.Errorf("post to %s: %w", dest.Channel, ctx.Err())
		}
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if err := a.next(); err != nil {
		return bot.Ref{}, fmt.Errorf("post to %s: %w", dest.Channel, err)
	}
	a.seq++
	ref := bot.Ref{Platform: a.platform, Workspace: dest.Workspace, Channel: dest.Channel, Message: "m" + strconv.Itoa(a.seq)}
	if ref.Workspace == "" {
		ref.Workspace = a.workspace
	}
	a.record(Call{Op: OpPost, Dest: dest, Ref: ref, Message: m})
	if a.lose > 0 {
		a.lose--
		return bot.Ref{}, fmt.Errorf("post to %s: %w", dest.Channel,
			&bot.DeliveryError{Kind: bot.Temporary, Code: "timeout", Err: context.DeadlineExceeded})
	}
	return ref, nil
}

// FindPosted implements bot.Adapter: the recorded post carrying dest.Key in
// dest's channel (and thread) at or after since, if any.
func (a *Adapter) FindPosted(ctx context.Context, dest bot.Dest, since time.Time) (bot.Ref, bool, error) {
	if err := ctx.Err(); err != nil {
		return bot.Ref{}, false, err
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	var found bot.Ref
	for _, c := range a.calls {
		if c.Op != OpPost || c.Dest.Key == "" || c.Dest.Key != dest.Key || c.Ref.Channel != dest.Channel || c.At.Before(since) {
			continue
		}
		if (c.Dest.Thread == nil) != (dest.Thread == nil) || (dest.Thread != nil && c.Dest.Thread.Message != dest.Thread.Message) {
			continue
		}
		found = c.Ref
		break
	}
	a.record(Call{Op: OpFind, Dest: dest, Ref: found})
	return found, !found.IsZero(), nil
}

// Update implements bot.Adapter.
func (a *Adapter) Update(ctx context.Context, ref bot.Ref, m bot.Message) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if err := a.next(); err != nil {
		return fmt.Errorf("update %s: %w", ref.Message, err)
	}
	a.record(Call{Op: OpUpdate, Ref: ref, Message: m})
	return nil
}

// PostPrivate implements bot.Adapter.
func (a *Adapter) PostPrivate(ctx context.Context, dest bot.Dest, userID string, m bot.Message) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.record(Call{Op: OpPrivate, Dest: dest, UserID: userID, Message: m})
	return nil
}

// OpenForm implements bot.Adapter.
func (a *Adapter) OpenForm(ctx context.Context, trigger string, f bot.Form) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.record(Call{Op: OpForm, Trigger: trigger, Form: f})
	return nil
}

// UserName implements bot.Adapter: the name set with SetName, or the id.
func (a *Adapter) UserName(ctx context.Context, workspace, userID string) (string, error) {
	a.mu.Lock()
	d := a.slowNames[userID]
	a.mu.Unlock()
	select {
	case <-time.After(d):
	case <-ctx.Done():
		return "", ctx.Err()
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if n, ok := a.names[userID]; ok {
		return n, nil
	}
	return userID, nil
}

// Resume implements bot.Resumer: it rebuilds a Responder from the state a
// Responder gave (its id); answers through it are recorded here as
// OpRespond calls carrying that id.
func (a *Adapter) Resume(state json.RawMessage) (bot.Responder, error) {
	var st struct {
		Responder string `json:"responder"`
	}
	if err := json.Unmarshal(state, &st); err != nil || st.Responder == "" {
		return nil, fmt.Errorf("bottest: not a responder state: %q", state)
	}
	return resumed{a: a, id: st.Responder}, nil
}

type resumed struct {
	a  *Adapter
	id string
}

func (r resumed) Respond(ctx context.Context, m bot.Message, private bool) error {
	r.a.mu.Lock()
	defer r.a.mu.Unlock()
	r.a.record(Call{Op: OpRespond, Responder: r.id, Message: m, Private: private})
	return nil
}

// Calls returns every recorded call so far, in order.
func (a *Adapter) Calls() []Call {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]Call(nil), a.calls...)
}

// Find returns the recorded calls of op that match keep (nil keeps all).
func (a *Adapter) Find(op Op, keep func(Call) bool) []Call {
	var out []Call
	for _, c := range a.Calls() {
		if c.Op == op && (keep == nil || keep(c)) {
			out = append(out, c)
		}
	}
	return out
}

// Count counts the recorded calls of op that match keep (nil keeps all),
// without copying them.
func (a *Adapter) Count(op Op, keep func(Call) bool) int {
	a.mu.Lock()
	defer a.mu.Unlock()
	n := 0
	for _, c := range a.calls {
		if c.Op == op && (keep == nil || keep(c)) {
			n++
		}
	}
	return n
}

// WaitFor waits until cond holds on the recorded calls, checking it each
// time a call is recorded, or until timeout passes, and reports whether it
// held.
func (a *Adapter) WaitFor(timeout time.Duration, cond func([]Call) bool) bool {
	return testwait.Until(timeout, func() bool { return cond(a.Calls()) }, a)
}

// Response is one recorded answer through a Responder.
type Response struct {
	Message bot.Message
	Private bool
}

// Responder records the bot's answers to one inbound event.
type Responder struct {
	id    string
	mu    sync.Mutex
	got   []Response
	files []FilesResponse
	wake  chan struct{}
}

var (
	_ bot.Resumable     = (*Responder)(nil)
	_ bot.FileResponder = (*Responder)(nil)
)

// FilesResponse is one answer with files (RespondFiles).
type FilesResponse struct {
	Message bot.Message
	Files   []bot.Document
}

// RespondFiles implements bot.FileResponder: it records m and files as the
// answer itself (as an ephemeral Discord follow-up is).
func (r *Responder) RespondFiles(ctx context.Context, m bot.Message, files []bot.Document) (string, error) {
	r.mu.Lock()
	r.files = append(r.files, FilesResponse{Message: m, Files: files})
	r.mu.Unlock()
	select {
	case r.wake <- struct{}{}:
	default:
	}
	return "", nil
}

// FileResponses returns the answers with files so far.
func (r *Responder) FileResponses() []FilesResponse {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]FilesResponse(nil), r.files...)
}

// WaitFiles returns the first answer with files, waiting up to timeout.
func (r *Responder) WaitFiles(timeout time.Duration) (FilesResponse, bool) {
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		if got := r.FileResponses(); len(got) > 0 {
			return got[0], true
		}
		select {
		case <-r.wake:
		case <-deadline.C:
			if got := r.FileResponses(); len(got) > 0 {
				return got[0], true
			}
			return FilesResponse{}, false
		}
	}
}

// NewResponder returns an empty recording Responder with a random id.
func NewResponder() *Responder {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return &Responder{id: hex.EncodeToString(b[:]), wake: make(chan struct{}, 1)}
}

// ID is what ResumeState stores, and what answers through a Responder
// rebuilt from it carry (Call.Responder).
func (r *Responder) ID() string { return r.id }

// ResumeState implements bot.Resumable.
func (r *Responder) ResumeState() (json.RawMessage, error) {
	return json.Marshal(map[string]string{"responder": r.id})
}

// Respond implements bot.Responder.
func (r *Responder) Respond(ctx context.Context, m bot.Message, private bool) error {
	r.mu.Lock()
	r.got = append(r.got, Response{Message: m, Private: private})
	r.mu.Unlock()
	select {
	case r.wake <- struct{}{}:
	default:
	}
	return nil
}

// Responses returns the answers so far.
func (r *Responder) Responses() []Response {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Response(nil), r.got...)
}

// Wait returns the first answer, waiting up to timeout; ok is false when none came.
func (r *Responder) Wait(timeout time.Duration) (Response, bool) {
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		if got := r.Responses(); len(got) > 0 {
			return got[0], true
		}
		select {
		case <-r.wake:
		case <-deadline.C:
			got := r.Responses()
			if len(got) > 0 {
				return got[0], true
			}
			return Response{}, false
		}
	}
}

// Plain flattens a message's title, text, fields, sections, items (with
// their actions), buttons and footer to plain text, one line each, for
// assertions.
func Plain(m bot.Message) string {
	s := ""
	add := func(l bot.Line) {
		for _, sp := range l {
			s += sp.Text
		}
		s += "\n"
	}
	if m.Title != "" {
		s += m.Title + "\n"
	}
	for _, l := range m.Text {
		add(l)
	}
	if m.Quote != "" {
		s += m.Quote + "\n"
	}
	for _, f := range m.Fields {
		s += f.Label + ": "
		add(f.Value)
	}
	for _, sec := range m.Sections {
		s += sec.Title + "\n"
		for _, l := range sec.Lines {
			add(l)
		}
	}
	for _, it := range m.Items {
		for _, sp := range it.Line {
			s += sp.Text
		}
		for _, b := range it.Actions {
			s += " [" + b.Label + "]"
		}
		s += "\n"
	}
	for _, b := range m.Buttons {
		s += "[" + b.Label + "]"
	}
	if len(m.Buttons) > 0 {
		s += "\n"
	}
	add(m.Footer)
	return s
}

// Deactivate makes Present say userID's account is no longer active.
func (a *Adapter) Deactivate(userID string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.gone[userID] = true
}

// Leave makes Present say userID is no longer in channel.
func (a *Adapter) Leave(channel, userID string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.left[channel+"/"+userID] = true
}

// FailPresent makes Present fail with err (nil: answer again).
func (a *Adapter) FailPresent(err error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.presentErr = err
}

// Present implements bot.Presence: everyone is present until Deactivate
// or Leave says otherwise (counted in PresentCalls).
func (a *Adapter) Present(_ context.Context, _, userID, channel string) (bool, error) {
	a.mu.Lock()
	a.presentCalls++
	err := a.presentErr
	here := !a.gone[userID] && (channel == "" || !a.left[channel+"/"+userID])
	a.mu.Unlock()
	if err != nil {
		return true, err
	}
	return here, nil
}

// PresentCalls counts the Present look-ups so far.
func (a *Adapter) PresentCalls() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.presentCalls
}
