package discord

import (
	"bytes"
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"time"

	"github.com/bwmarrin/discordgo"

	"github.com/threatdesk/threatdesk/bot"
)

// do makes a bot-token REST call through discordgo's per-route limiter. When
// the limiter would make the call wait (a bucket exhausted, a global limit),
// it returns bot.RateLimited with that wait instead of sleeping, so the
// outbox, which owns pacing and retries, waits once and nothing blocks a
// worker. A 429 is not retried inside discordgo (ShouldRetryOnRateLimit is
// off): it also surfaces as bot.RateLimited with Discord's retry_after.
func (a *Adapter) do(ctx context.Context, op, method, endpoint, bucketID string, body any) ([]byte, error) {
	var data []byte
	if body != nil {
		var err error
		if data, err = json.Marshal(body); err != nil {
			return nil, fmt.Errorf("%s: encode: %w", op, err)
		}
	}
	if wait := time.Until(time.Unix(0, a.globalUntil.Load())); wait > 0 {
		// Discord's global limit: every route waits (discordgo's limiter
		// sets its global lock only from bucket headers, which a global
		// 429 does not carry).
		a.m.requests.WithLabelValues(op, "ratelimited").Inc()
		return nil, bot.RateLimitError(wait, fmt.Errorf("%s: discord global rate limit", op))
	}
	ctx, cancel := context.WithTimeout(ctx, a.cfg.RequestTimeout)
	defer cancel()
	b := a.rest.Ratelimiter.GetBucket(bucketID)
	b.Lock()
	if wait := a.rest.Ratelimiter.GetWaitTime(b, 1); wait > 0 {
		b.Unlock()
		a.m.requests.WithLabelValues(op, "ratelimited").Inc()
		return nil, bot.RateLimitError(wait, fmt.Errorf("%s: discord route limit reached", op))
	}
	b.Remaining--
	resp, err := a.rest.RequestWithLockedBucket(method, endpoint, "application/json", data, b, 0, discordgo.WithContext(ctx))
	if err != nil {
		err = a.classify(op, err)
		k, _ := bot.Classify(err)
		a.m.requests.WithLabelValues(op, kindName(k)).Inc()
		return nil, err
	}
	a.m.requests.WithLabelValues(op, "ok").Inc()
	return resp, nil
}

// doInteraction calls an interaction endpoint (callback, followup, original
// response). Those are not bound to the bot's rate limits and are unique per
// interaction, so they bypass discordgo's limiter (whose bucket map would
// otherwise grow by one entry per interaction) and run concurrently.
func (a *Adapter) doInteraction(ctx context.Context, op, method, endpoint string, body any) ([]byte, error) {
	if body == nil {
		return a.doInteractionBody(ctx, op, method, endpoint, "", nil)
	}
	data, err := json.Marshal(body)
	if err != nil {
		return nil, fmt.Errorf("%s: encode: %w", op, err)
	}
	return a.doInteractionBody(ctx, op, method, endpoint, "application/json", data)
}

// doInteractionBody is doInteraction with a body already encoded as
// contentType (a multipart form with files: files.go).
func (a *Adapter) doInteractionBody(ctx context.Context, op, method, endpoint, contentType string, data []byte) ([]byte, error) {
	var rd io.Reader
	if data != nil {
		rd = bytes.NewReader(data)
	}
	ctx, cancel := context.WithTimeout(ctx, a.cfg.RequestTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, endpoint, rd)
	if err != nil {
		return nil, a.classify(op, err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	req.Header.Set("User-Agent", a.rest.UserAgent)
	resp, err := a.client.Do(req)
	if err != nil {
		err = a.classify(op, err)
		a.m.requests.WithLabelValues(op, "temporary").Inc()
		return nil, err
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	switch {
	case resp.StatusCode >= 200 && resp.StatusCode < 300:
		a.m.requests.WithLabelValues(op, "ok").Inc()
		return out, nil
	case resp.StatusCode == http.StatusTooManyRequests:
		a.m.requests.WithLabelValues(op, "ratelimited").Inc()
		return nil, bot.RateLimitError(retryAfter(resp.Header, out), fmt.Errorf("%s", op))
	}
	err = a.classify(op, parseAPIError(resp.StatusCode, out))
	k, _ := bot.Classify(err)
	a.m.requests.WithLabelValues(op, kindName(k)).Inc()
	return nil, err
}

func kindName(k bot.ErrorKind) string {
	switch k {
	case bot.RateLimited:
		return "ratelimited"
	case bot.Permanent:
		return "permanent"
	}
	return "temporary"
}

// apiCode returns the Discord JSON error code inside err, or 0.
func apiCode(err error) int {
	var ae *apiError
	if errors.As(err, &ae) {
		return ae.Code
	}
	return 0
}

// nonce derives a message nonce from the post's idempotency key and the
// channel: a retried create with the same nonce returns the message the
// first try created (enforce_nonce), for a few minutes.
func nonce(key, channel string) string {
	if key == "" {
		return ""
	}
	sum := sha256.Sum256([]byte(key + "\x00" + channel))
	return hex.EncodeToString(sum[:])[:MaxNonce]
}

type postedMessage struct {
	ID        string `json:"id"`
	ChannelID string `json:"channel_id"`
}

// Post implements bot.Adapter. A Dest with Thread posts into the thread
// started on that anchor message (its id is the thread's id); a message with
// ThreadName gets a thread started on it.
func (a *Adapter) Post(ctx context.Context, dest bot.Dest, m bot.Message) (bot.Ref, error) {
	ch := dest.Channel
	inThread := dest.Thread != nil && dest.Thread.Message != ""
	if inThread {
		ch = dest.Thread.Message
	}
	if !bot.IsDiscordID(ch) {
		return bot.Ref{}, bot.PermanentError("bad_channel", "a Discord channel id is a number: fix the channel in the config", fmt.Errorf("post: channel %q", ch))
	}
	// A thread may not be started yet: its parent says where it will be.
	if err := a.inGuild(ctx, dest.Workspace, cmp.Or(threadParent(dest), ch)); err != nil {
		return bot.Ref{}, fmt.Errorf("post: %w", err)
	}
	p := render(m)
	if n := nonce(dest.Key, ch); n != "" {
		p.Nonce, p.EnforceNonce = n, true
	}
	msg, err := a.createMessage(ctx, ch, p)
	if err != nil && inThread && apiCode(err) == codeUnknownChannel && dest.Thread.Channel != "" {
		// The anchor has no thread yet (its start failed once): start it now.
		if terr := a.startThread(ctx, dest.Thread.Channel, dest.Thread.Message, cmp.Or(m.ThreadName, "threatdesk")); terr == nil {
			msg, err = a.createMessage(ctx, ch, p)
		}
	}
	if err != nil {
		return bot.Ref{}, fmt.Errorf("post to discord channel %s: %w", ch, err)
	}
	ref := bot.Ref{Platform: bot.Discord, Workspace: dest.Workspace, Channel: cmp.Or(msg.ChannelID, ch), Message: msg.ID}
	if m.ThreadName != "" && !inThread {
		if err := a.startThread(ctx, ref.Channel, ref.Message, m.ThreadName); err != nil {
			a.log.Warn("message posted but its thread could not be started; it will be started on the first post into it",
				"channel", ref.Channel, "message", ref.Message, "err", err)
		}
	}
	return ref, nil
}

func (a *Adapter) createMessage(ctx context.Context, ch string, p messagePayload) (postedMessage, error) {
	body, err := a.do(ctx, "create message", http.MethodPost, discordgo.EndpointChannelMessages(ch), discordgo.EndpointChannelMessages(ch), p)
	if err != nil {
		return postedMessage{}, err
	}
	var msg postedMessage
	if err := json.Unmarshal(body, &msg); err != nil || msg.ID == "" {
		return postedMessage{}, &bot.DeliveryError{Kind: bot.Temporary, Code: "bad_response", Err: errors.New("create message: discord's answer has no message id")}
	}
	return msg, nil
}

// startThread starts a public thread on a message; the thread's id is the
// message's id. An existing thread counts as started.
func (a *Adapter) startThread(ctx context.Context, channel, message, name string) error {
	body := discordgo.ThreadStart{Name: cut(name, MaxThreadName), AutoArchiveDuration: 10080}
	ep := discordgo.EndpointChannelMessageThread(channel, message)
	_, err := a.do(ctx, "start thread", http.MethodPost, ep, discordgo.EndpointChannelMessages(channel)+"//threads", body)
	if err != nil && apiCode(err) != codeThreadExists {
		return fmt.Errorf("start thread on message %s in channel %s: %w", message, channel, err)
	}
	if err == nil {
		// New: this session has seen all of it (catchup.go).
		a.mu.Lock()
		gen := a.gen
		a.mu.Unlock()
		a.markReadThrough(gen, message)
	}
	parent, _ := a.cachedChannel(channel)
	a.rememberChannel(channelInfo{ID: message, Type: int(discordgo.ChannelTypeGuildPublicThread), ParentID: channel, GuildID: parent.GuildID})
	return nil
}

// unarchive reopens an archived thread (not a locked one: a moderator
// locked it, and that is refused).
func (a *Adapter) unarchive(ctx context.Context, thread string) error {
	ep := discordgo.EndpointChannel(thread)
	_, err := a.do(ctx, "unarchive thread", http.MethodPatch, ep, ep, map[string]bool{"archived": false})
	return err
}

func threadParent(d bot.Dest) string {
	if d.Thread != nil && d.Thread.Message != "" {
		return d.Thread.Channel
	}
	return ""
}

// inGuild checks that channel (a channel or thread) is in guild, the
// org's or the desk's server: one bot token reaches every server the bot
// is in, so a channel id of another server in an org's config would carry
// the org's cases into another customer's server. What is known of
// channels is kept; a guild of "" is not checked.
func (a *Adapter) inGuild(ctx context.Context, guild, channel string) error {
	if guild == "" || channel == "" {
		return nil
	}
	c, err := a.channel(ctx, channel)
	if err == nil && c.GuildID == "" && !c.isDirect() {
		a.forgetChannel(channel) // kept without its server: ask Discord
		c, err = a.channel(ctx, channel)
	}
	if err != nil {
		return fmt.Errorf("check the server of channel %s: %w", channel, err)
	}
	if c.GuildID != guild && !c.isDirect() {
		return bot.PermanentError("other_server", "the channel is in another Discord server than the org's (or the desk's): fix the channel or the guild in the config",
			fmt.Errorf("channel %s is in server %q, not %s", channel, c.GuildID, guild))
	}
	return nil
}

func (a *Adapter) forgetChannel(id string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	delete(a.channels, id)
}

// FindPosted implements bot.Adapter. Discord needs no search: Post sends
// the part's key as the message nonce with enforce_nonce, and Discord
// answers a create whose nonce it saw in that channel in the last few minutes
// with the message it already created instead of a second one. A retry after
// an unknown outcome comes when the row's lease runs out (2 minutes by
// default), inside that window. (Discord offers no search by nonce.)
func (a *Adapter) FindPosted(context.Context, bot.Dest, time.Time) (bot.Ref, bool, error) {
	return bot.Ref{}, false, nil
}

// Update implements bot.Adapter.
func (a *Adapter) Update(ctx context.Context, ref bot.Ref, m bot.Message) error {
	if !bot.IsDiscordID(ref.Channel) || !bot.IsDiscordID(ref.Message) {
		return bot.PermanentError("bad_ref", "not a Discord message reference", fmt.Errorf("update: channel %q message %q", ref.Channel, ref.Message))
	}
	if err := a.inGuild(ctx, ref.Workspace, ref.Channel); err != nil {
		return fmt.Errorf("update: %w", err)
	}
	ep := discordgo.EndpointChannelMessage(ref.Channel, ref.Message)
	edit := func() error {
		_, err := a.do(ctx, "edit message", http.MethodPatch, ep, discordgo.EndpointChannelMessages(ref.Channel)+"/edit", render(m))
		return err
	}
	err := edit()
	if apiCode(err) == codeThreadArchived {
		// A thread idle for its auto-archive time (7 days) takes no edit
		// until unarchived; a post would unarchive it by itself.
		if uerr := a.unarchive(ctx, ref.Channel); apiCode(uerr) == codeMissingPermissions {
			// Locked as well: only a moderator reopens it.
			return bot.PermanentError(strconv.Itoa(codeThreadLocked), msgThreadLocked,
				fmt.Errorf("update discord message %s in archived thread %s: %w", ref.Message, ref.Channel, uerr))
		} else if uerr != nil {
			return fmt.Errorf("update discord message %s in archived thread %s: %w", ref.Message, ref.Channel, uerr)
		}
		err = edit()
	}
	if err != nil {
		return fmt.Errorf("update discord message %s in channel %s: %w", ref.Message, ref.Channel, err)
	}
	return nil
}

// PostPrivate implements bot.Adapter: outside an interaction Discord can
// only answer one user privately by direct message.
func (a *Adapter) PostPrivate(ctx context.Context, dest bot.Dest, userID string, m bot.Message) error {
	ch, err := a.dmChannel(ctx, userID)
	if err != nil {
		return err
	}
	if _, err := a.createMessage(ctx, ch, render(m)); err != nil {
		return fmt.Errorf("direct message to discord user %s: %w", userID, err)
	}
	return nil
}

func (a *Adapter) dmChannel(ctx context.Context, userID string) (string, error) {
	a.mu.Lock()
	ch, ok := a.dms[userID]
	a.mu.Unlock()
	if ok {
		return ch, nil
	}
	body, err := a.do(ctx, "open dm", http.MethodPost, discordgo.EndpointUserChannels("@me"), discordgo.EndpointUserChannels("@me"),
		map[string]string{"recipient_id": userID})
	if err != nil {
		return "", fmt.Errorf("open direct message with discord user %s: %w", userID, err)
	}
	var c struct {
		ID string `json:"id"`
	}
	if err := json.Unmarshal(body, &c); err != nil || c.ID == "" {
		return "", &bot.DeliveryError{Kind: bot.Temporary, Code: "bad_response", Err: errors.New("open dm: no channel id in discord's answer")}
	}
	a.mu.Lock()
	a.dms[userID] = c.ID
	a.mu.Unlock()
	return c.ID, nil
}

// OpenForm implements bot.Adapter. On Discord a modal is only ever the
// immediate answer to an interaction (bot.Ack.Form), so this always fails.
func (a *Adapter) OpenForm(context.Context, string, bot.Form) error {
	return bot.PermanentError("unsupported", "on Discord forms open through the interaction's Ack", ErrFormNeedsAck)
}

type cachedName struct {
	name string
	at   time.Time
}

const nameTTL = 10 * time.Minute

// Present implements bot.Presence: a user is present while a member of
// the guild (GET /guilds/{guild}/members/{user}; 10007 Unknown Member when
// they left or were removed, 10013 Unknown User when the account is gone)
// who may still view channel, when one is given: Discord channels have no
// member list, only permissions, so their View Channel permission there is
// computed from the guild's roles (GET /guilds/{guild}) and the channel's
// overwrites (GET /channels/{channel}), as Discord does. When one guild
// hosts two orgs' channels, someone taken out of one org's channel keeps
// no tracker session of that org.
func (a *Adapter) Present(ctx context.Context, workspace, userID, channel string) (bool, error) {
	if workspace == "" {
		return true, nil
	}
	body, err := a.do(ctx, "get member", http.MethodGet, discordgo.EndpointGuildMember(workspace, userID), discordgo.EndpointGuildMember(workspace, ""), nil)
	switch {
	case apiCode(err) == codeUnknownMember || apiCode(err) == codeUnknownUser:
		return false, nil
	case err != nil:
		return true, fmt.Errorf("check discord member %s: %w", userID, err)
	}
	if channel == "" {
		return true, nil
	}
	var mem struct {
		Roles []string `json:"roles"`
	}
	if err := json.Unmarshal(body, &mem); err != nil {
		return true, fmt.Errorf("check discord member %s: decode: %w", userID, err)
	}
	var g discordgo.Guild
	if err := a.getJSON(ctx, "get guild", discordgo.EndpointGuild(workspace), discordgo.EndpointGuild(""), &g); err != nil {
		return true, fmt.Errorf("check the roles of discord guild %s: %w", workspace, err)
	}
	var ch discordgo.Channel
	if err := a.getJSON(ctx, "get channel", discordgo.EndpointChannel(channel), discordgo.EndpointChannel(""), &ch); err != nil {
		return true, fmt.Errorf("check discord channel %s: %w", channel, err)
	}
	return memberPermissions(&g, &ch, userID, mem.Roles)&discordgo.PermissionViewChannel != 0, nil
}

// getJSON GETs ep (its rate-limit route: route) and decodes the answer
// into out.
func (a *Adapter) getJSON(ctx context.Context, op, ep, route string, out any) error {
	body, err := a.do(ctx, op, http.MethodGet, ep, route, nil)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(body, out); err != nil {
		return fmt.Errorf("decode: %w", err)
	}
	return nil
}

// memberPermissions computes a member's permissions in a channel as
// Discord documents it: the owner has all; else @everyone's (the role
// whose id is the guild's) and the member's roles' permissions,
// Administrator meaning all; then the channel's overwrites, @everyone's,
// the roles' together, the member's own, each denying then allowing.
// https://discord.com/developers/docs/topics/permissions#permission-overwrites
func memberPermissions(g *discordgo.Guild, ch *discordgo.Channel, userID string, roles []string) int64 {
	if userID == g.OwnerID {
		return discordgo.PermissionAll
	}
	var perms int64
	for _, r := range g.Roles {
		if r.ID == g.ID || slices.Contains(roles, r.ID) {
			perms |= r.Permissions
		}
	}
	if perms&discordgo.PermissionAdministrator != 0 {
		return discordgo.PermissionAll
	}
	apply := func(deny, allow int64) { perms = perms&^deny | allow }
	var roleDeny, roleAllow int64
	for _, o := range ch.PermissionOverwrites {
		switch {
		case o.Type == discordgo.PermissionOverwriteTypeRole && o.ID == g.ID:
			apply(o.Deny, o.Allow)
		case o.Type == discordgo.PermissionOverwriteTypeRole && slices.Contains(roles, o.ID):
			roleDeny, roleAllow = roleDeny|o.Deny, roleAllow|o.Allow
		}
	}
	apply(roleDeny, roleAllow)
	for _, o := range ch.PermissionOverwrites {
		if o.Type == discordgo.PermissionOverwriteTypeMember && o.ID == userID {
			apply(o.Deny, o.Allow)
		}
	}
	return perms
}

// UserName implements bot.Adapter: the member's server nickname, else the
// user's display name, else the username.
func (a *Adapter) UserName(ctx context.Context, workspace, userID string) (string, error) {
	key := workspace + "/" + userID
	a.mu.Lock()
	c, ok := a.names[key]
	a.mu.Unlock()
	if ok && a.cfg.Now().Sub(c.at) < nameTTL {
		return c.name, nil
	}
	var name string
	if workspace != "" {
		body, err := a.do(ctx, "get member", http.MethodGet, discordgo.EndpointGuildMember(workspace, userID), discordgo.EndpointGuildMember(workspace, ""), nil)
		if err != nil {
			return "", fmt.Errorf("look up discord member %s: %w", userID, err)
		}
		var mem struct {
			Nick string         `json:"nick"`
			User discordgo.User `json:"user"`
		}
		if err := json.Unmarshal(body, &mem); err != nil {
			return "", fmt.Errorf("look up discord member %s: decode: %w", userID, err)
		}
		name = cmp.Or(mem.Nick, cmp.Or(mem.User.GlobalName, mem.User.Username))
	} else {
		body, err := a.do(ctx, "get user", http.MethodGet, discordgo.EndpointUser(userID), discordgo.EndpointUsers, nil)
		if err != nil {
			return "", fmt.Errorf("look up discord user %s: %w", userID, err)
		}
		var u discordgo.User
		if err := json.Unmarshal(body, &u); err != nil {
			return "", fmt.Errorf("look up discord user %s: decode: %w", userID, err)
		}
		name = cmp.Or(u.GlobalName, u.Username)
	}
	a.mu.Lock()
	a.names[key] = cachedName{name: name, at: a.cfg.Now()}
	a.mu.Unlock()
	return name, nil
}

// me reads the bot's own user id.
func (a *Adapter) me(ctx context.Context) (string, error) {
	body, err := a.do(ctx, "get self", http.MethodGet, discordgo.EndpointUser("@me"), discordgo.EndpointUsers, nil)
	if err != nil {
		return "", err
	}
	var u discordgo.User
	if err := json.Unmarshal(body, &u); err != nil {
		return "", fmt.Errorf("read bot user: %w", err)
	}
	return u.ID, nil
}

// channelInfo is what the adapter knows about a channel or thread.
type channelInfo struct {
	ID       string `json:"id"`
	Type     int    `json:"type"`
	ParentID string `json:"parent_id"`
	GuildID  string `json:"guild_id"`
}

// isDirect reports whether c is a direct message (one person, or a group).
func (c channelInfo) isDirect() bool {
	t := discordgo.ChannelType(c.Type)
	return t == discordgo.ChannelTypeDM || t == discordgo.ChannelTypeGroupDM
}

func (c channelInfo) isThread() bool {
	switch discordgo.ChannelType(c.Type) {
	case discordgo.ChannelTypeGuildPublicThread, discordgo.ChannelTypeGuildPrivateThread, discordgo.ChannelTypeGuildNewsThread:
		return true
	}
	return false
}

// maxChannels bounds the channel cache.
const maxChannels = 50000

func (a *Adapter) rememberChannel(c channelInfo) {
	if c.ID == "" {
		return
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if len(a.channels) >= maxChannels {
		clear(a.channels)
	}
	a.channels[c.ID] = c
}

// channel returns what is known of a channel, asking Discord when needed.
func (a *Adapter) channel(ctx context.Context, id string) (channelInfo, error) {
	a.mu.Lock()
	c, ok := a.channels[id]
	a.mu.Unlock()
	if ok {
		return c, nil
	}
	body, err := a.do(ctx, "get channel", http.MethodGet, discordgo.EndpointChannel(id), discordgo.EndpointChannel(id), nil)
	if err != nil {
		return channelInfo{}, fmt.Errorf("look up discord channel %s: %w", id, err)
	}
	if err := json.Unmarshal(body, &c); err != nil {
		return channelInfo{}, fmt.Errorf("look up discord channel %s: decode: %w", id, err)
	}
	a.rememberChannel(c)
	return c, nil
}
