package bot

import (
	"cmp"
	"context"
	"time"
)

// Platform names a chat platform.
type Platform string

// Platforms.
const (
	Slack   Platform = "slack"
	Discord Platform = "discord"
)

// Ref points at one chat message.
type Ref struct {
	Platform Platform
	// Workspace is the Slack team id or the Discord guild id.
	Workspace string
	// Channel holds the message. On Discord a message posted in a thread has
	// the thread's id here; an anchor (receipt, desk card) has its parent channel.
	Channel string
	// Message is the Slack ts or the Discord message id.
	Message string
}

// IsZero reports whether r points nowhere.
func (r Ref) IsZero() bool { return r.Message == "" }

// Dest is where to post: a channel, optionally inside a message's thread.
type Dest struct {
	Platform  Platform
	Workspace string
	Channel   string
	// Thread, when set, is the anchor message whose thread receives the post
	// (Slack thread_ts; on Discord the thread started on that message).
	Thread *Ref
	// Key is a stable idempotency key for this post (set by the delivery
	// worker: the same outbox row and part always carry the same key). An
	// adapter whose platform can deduplicate on it should (Discord: nonce
	// with enforce_nonce, hashed to its 25 characters); others may ignore it.
	Key string
}

// User identifies who acted.
type User struct {
	Platform    Platform
	Workspace   string
	ID          string
	DisplayName string
	// ReadOnly: the platform says the user may read the channel they acted
	// in but not write there (Discord: no Send Messages, in a thread no
	// Send Messages in Threads). They are no member of its org: a member
	// is someone who speaks in the org's channel.
	ReadOnly bool `json:",omitempty"`
}

// Responder answers an inbound event after it was acknowledged: Slack's
// response_url, Discord's interaction webhook. Adapters provide it, and
// make it Resumable so that an answer survives a restart.
type Responder interface {
	// Respond posts m to the person who acted; private answers are ephemeral.
	Respond(ctx context.Context, m Message, private bool) error
}

// Command is a slash command: /experts <Name> <Args...>.
type Command struct {
	User    User
	Channel string
	// Thread is set when the command was issued inside a thread.
	Thread *Ref
	// Name is the subcommand ("alert", "status", ...); empty for bare /experts.
	Name string
	// Args are the words after the subcommand, mentions already resolved to
	// user ids ("<@U123|alice>" becomes "U123" on Slack). Quoted text stays one arg.
	Args []string
	// Text is everything after the subcommand as typed, for free-text questions.
	Text string
	// Options are Discord's typed options by name (empty on Slack).
	Options map[string]string
	// Key identifies this delivery: a redelivery carries the same key.
	Key string
	// Trigger opens a form (Slack trigger_id); Discord opens forms through the Ack.
	Trigger string
	// Respond answers after the acknowledgement.
	Respond Responder
	// Received is when the adapter got it.
	Received time.Time
}

// ActionID names a button.
type ActionID string

// Actions on cards.
const (
	ActTake        ActionID = "take"
	ActMoreInfo    ActionID = "more_info"
	ActSample      ActionID = "sample"
	ActMoreTime    ActionID = "more_time"
	ActConclude    ActionID = "conclude"
	ActAddDetails  ActionID = "add_details"
	ActClose       ActionID = "close"
	ActWithdraw    ActionID = "withdraw"
	ActReopen      ActionID = "reopen"
	ActConsult     ActionID = "consult"
	ActAcknowledge ActionID = "acknowledge"
	ActShowScope   ActionID = "show_scope"
	ActAskEntity   ActionID = "ask_entity"
	// ActResolve opens the Resolve form of an incident (its notification
	// card); ActNotifyNow posts a quiet incident as a notification.
	ActResolve   ActionID = "resolve_incident"
	ActNotifyNow ActionID = "notify_now"
	// ActOlderIncidents shows the next page of /experts incidents; its
	// value is "<list>:<org named, or empty>:<the last incident shown>".
	ActOlderIncidents ActionID = "older_incidents"
	// ActDownloadSample is a desk card's Download sample button; its value
	// is "EOD-12:34" (the case and the sample).
	ActDownloadSample ActionID = "download_sample"
	// Choices on a question kept before it opened a case (asking.go).
	ActAskAnyway  ActionID = "ask_anyway"
	ActFollow     ActionID = "follow"
	ActOpenNew    ActionID = "open_new"
	ActCancelAsk  ActionID = "cancel_ask"
	ActApproveAsk ActionID = "approve_ask"
	// ActTagCampaign is the desk card's Tag campaign (insight.go).
	ActTagCampaign ActionID = "tag_campaign"
)

// Action is a button or menu press.
type Action struct {
	User    User
	Action  ActionID
	Value   string
	Message Ref // the message that carried the button
	// Channel is the channel the press acts for when it is not the
	// message's: a thread's parent (a Discord thread is a channel of its
	// own). Empty: Message.Channel.
	Channel string `json:",omitempty"`
	Key     string
	Trigger string
	Respond Responder
}

// actsIn is the channel whose org a press acts for.
func (a Action) actsIn() string { return cmp.Or(a.Channel, a.Message.Channel) }

// Submission is a submitted form.
type Submission struct {
	User    User
	FormID  string
	State   string
	Values  map[string]string
	Channel string
	Key     string
	Respond Responder
}

// Reply is a message posted in a thread the bot may care about.
type Reply struct {
	// Parent is the anchor of the thread (the message the thread hangs off),
	// with its parent channel.
	Parent Ref
	// Message is the reply itself.
	Message Ref
	Author  User
	Text    string
	// FromBot is true for any bot's message, including ours: never relayed.
	FromBot bool
	Key     string
	// Files are the files posted with the reply: stored as samples of the
	// case, never relayed (samples.go).
	Files []File
	// Change is ReplyEdited when Message was edited (Text is its new
	// text) and ReplyDeleted when it was deleted (Text is empty); empty
	// for a new message. Key must then name the change (an edit's event,
	// not the message), so that each edit is worked once.
	Change ReplyChange `json:",omitempty"`
	// HoldMark says an older message of its thread is still waiting to be
	// handed over (an adapter retrying it): the thread's mark, where a
	// catch-up starts reading, must not pass it.
	HoldMark bool `json:",omitempty"`
}

// ReplyChange is what happened to a thread message already posted.
type ReplyChange string

// Changes of a thread message.
const (
	ReplyEdited  ReplyChange = "edited"
	ReplyDeleted ReplyChange = "deleted"
)

// Ack is what an adapter sends back at once, inside the platform's 3 seconds.
type Ack struct {
	// Form, when set, is opened as the answer (Discord modal response; Slack
	// views.open with the trigger).
	Form *Form
	// Message, when set, is the immediate answer; otherwise the adapter
	// acknowledges silently (Discord: deferred) and the bot answers later
	// through Respond.
	Message *Message
	// Private makes the immediate or deferred answer ephemeral.
	Private bool
}

// SubmitAck answers a form submission.
type SubmitAck struct {
	// Errors maps a field id to what is wrong; non-empty keeps the form open.
	Errors map[string]string
}

// Handler is the bot's inbound side, called by adapters. Every method
// returns within milliseconds: it decides the acknowledgement from the
// config and, when there is work, stores the event (one INSERT) before
// returning, so that what is acknowledged is never lost; the work runs
// after, with retries. An adapter acknowledges what the methods return:
// Command, Action and Submit answer a database outage themselves (a private
// note, a form error); HandleReply returns an error when the reply could
// not be stored, and then the adapter must not acknowledge it (Slack
// redelivers) or must keep it and call again (Discord's gateway).
type Handler interface {
	HandleCommand(ctx context.Context, c Command) Ack
	HandleAction(ctx context.Context, a Action) Ack
	HandleSubmit(ctx context.Context, s Submission) SubmitAck
	HandleReply(ctx context.Context, r Reply) error
}
