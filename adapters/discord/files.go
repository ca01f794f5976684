package discord

import (
	"bytes"
	"context"
	"fmt"
	"net/http"

	"github.com/bwmarrin/discordgo"

	"github.com/threatdesk/threatdesk/bot"
)

// Files handed to one person (/experts export): an ephemeral follow-up to
// their interaction with the files attached, which only they see. A body
// with files is multipart/form-data: the message as JSON in the
// payload_json part, with an attachments array whose ids are the n of each
// files[n] part (the "snowflake placeholder"), and one files[n] part per
// file with its filename.
// https://discord.com/developers/docs/reference#uploading-files
// https://discord.com/developers/docs/interactions/receiving-and-responding#create-followup-message

// File limits. https://discord.com/developers/docs/reference#uploading-files
const (
	// MaxAttachmentBytes is the default upload limit per file (10 MiB).
	MaxAttachmentBytes = 10 << 20
	// MaxAttachments is the most files one message carries.
	MaxAttachments = 10
	// MaxAttachmentDescription is the longest attachment description.
	MaxAttachmentDescription = 1024
)

// attachment describes one files[n] part in a message's JSON.
type attachment struct {
	ID          int    `json:"id"`
	Filename    string `json:"filename"`
	Description string `json:"description,omitempty"`
}

var _ bot.FileResponder = (*responder)(nil)

// RespondFiles implements bot.FileResponder: m with files as an ephemeral
// follow-up. After a deferred answer, Discord makes the first follow-up the
// deferred message itself, which keeps the deferral's privacy: a deferral
// that was public is closed with a neutral note first, as Respond does, so
// that the files never land in a public message.
func (r *responder) RespondFiles(ctx context.Context, m bot.Message, files []bot.Document) (string, error) {
	if len(files) == 0 || len(files) > MaxAttachments {
		return "", bot.PermanentError("bad_files", "", fmt.Errorf("discord: a message carries 1 to %d files, not %d", MaxAttachments, len(files)))
	}
	for _, f := range files {
		if len(f.Data) > MaxAttachmentBytes {
			return "", bot.PermanentError("file_too_large", "the file is larger than Discord's upload limit",
				fmt.Errorf("discord: %s is %d bytes, the limit is %d", f.Name, len(f.Data), MaxAttachmentBytes))
		}
	}
	select {
	case <-r.acked:
	case <-ctx.Done():
		return "", fmt.Errorf("answer interaction: %w", ctx.Err())
	}
	r.mu.Lock()
	first := r.deferred && !r.used
	public := !r.private
	r.used = true
	r.mu.Unlock()
	if first && public {
		orig := discordgo.EndpointWebhookMessage(r.appID, r.token, "@original")
		if _, err := r.a.doInteraction(ctx, "close the deferred response", http.MethodPatch, orig,
			render(bot.Message{Text: []bot.Line{{bot.T("Done: you have the files privately.")}}})); err != nil {
			return "", fmt.Errorf("files not sent, the deferred public response could not be closed first: %w", err)
		}
	}
	p := render(m)
	p.Flags = flagEphemeral
	body, ct, err := multipartMessage(p, files)
	if err != nil {
		return "", err
	}
	_, err = r.a.doInteractionBody(ctx, "followup with files", http.MethodPost, discordgo.EndpointWebhookToken(r.appID, r.token)+"?wait=true", ct, body)
	if err != nil {
		return "", err
	}
	return "", nil
}

// multipartMessage encodes p with files as Discord takes them (discordgo's
// encoder): payload_json (p, its attachments listing each file by its
// placeholder) and files[0], files[1], ...
func multipartMessage(p messagePayload, files []bot.Document) ([]byte, string, error) {
	p.Attachments = make([]attachment, len(files))
	df := make([]*discordgo.File, len(files))
	for i, f := range files {
		p.Attachments[i] = attachment{ID: i, Filename: f.Name, Description: cut(f.Title, MaxAttachmentDescription)}
		df[i] = &discordgo.File{Name: f.Name, ContentType: f.ContentType, Reader: bytes.NewReader(f.Data)}
	}
	ct, body, err := discordgo.MultipartBodyWithJSON(p, df)
	if err != nil {
		return nil, "", fmt.Errorf("encode message with files: %w", err)
	}
	return body, ct, nil
}
