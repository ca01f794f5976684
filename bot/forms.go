package bot

import (
	"context"
	"net/url"
	"strings"
)

// The expert's status forms (issue 14, item 4): Need more time asks for a
// reason, pre-filled; Need file sample asks which file, and insists on it
// when the case is not about a file.

// defaultMoreTime is the Need more time form's pre-filled reason.
const defaultMoreTime = "Analysis needs more time"

// msgNameFile is what an expert is told when a sample request names no file.
const msgNameFile = "Name the file: its SHA-256, SHA-1 or file name (this case is not about a file)."

func moreTimeForm(ref, channel string) Form {
	return Form{ID: formMoreTime, State: url.Values{"ref": {ref}, "c": {channel}}.Encode(), Title: "More time for " + ref, Submit: "Send",
		Fields: []FormField{{ID: fieldText, Label: "Why (shown to the requester)", Kind: InputParagraph, Value: defaultMoreTime, MaxLength: 3000}}}
}

// sampleForm asks which file and how to share it. When the case is about a
// file its hash is pre-filled and may stay; otherwise the file must be
// named. The case is looked up within the acknowledgement's time; when that
// fails the field is optional here and checked on submit.
func (b *Bot) sampleForm(ctx context.Context, ref, channel string) Form {
	file := FormField{ID: fieldFile, Label: "Which file (hash or name)", Kind: InputShort, MaxLength: 300,
		Placeholder: "e.g. 4b6f1c2d… or invoice.docm"}
	if c, ok := b.quickCase(ctx, ref); ok {
		if c.Subject.Kind == SubjectFile {
			file.Value = c.Subject.ID
		} else {
			file.Required, file.MinLength = true, 3
		}
	}
	return Form{ID: formSample, State: url.Values{"ref": {ref}, "c": {channel}}.Encode(), Title: "File sample for " + ref, Submit: "Send",
		Fields: []FormField{file, {ID: fieldText, Label: "How should they share it?", Kind: InputParagraph, Required: false, MaxLength: 3000}}}
}

// quickCase reads a case within the bound of an acknowledgement.
func (b *Bot) quickCase(ctx context.Context, ref string) (CaseView, bool) {
	if ref == "" {
		return CaseView{}, false
	}
	ctx, cancel := context.WithTimeout(ctx, b.cfg.Inbound.StoreTimeout)
	defer cancel()
	c, err := b.cases.Get(ctx, Scope{All: true}, ref)
	return c, err == nil
}

// checkSampleForm keeps the sample form open when it names no file for a
// case that is not about one.
func (b *Bot) checkSampleForm(ctx context.Context, s Submission) map[string]string {
	if strings.TrimSpace(s.Values[fieldFile]) != "" {
		return nil
	}
	state, _ := url.ParseQuery(s.State)
	ref, _ := normRef(state.Get("ref"))
	if c, ok := b.quickCase(ctx, ref); ok && c.Subject.Kind != SubjectFile {
		return map[string]string{fieldFile: msgNameFile}
	}
	return nil
}

// needFileNamed refuses a sample request that names no file on a case that
// is not about one.
func (b *Bot) needFileNamed(ctx context.Context, ref string) error {
	c, err := b.cases.Get(ctx, Scope{All: true}, ref)
	if err != nil {
		return err
	}
	if c.Subject.Kind != SubjectFile {
		return &usageError{msg: msgNameFile + " Usage: /experts sample " + ref + " \"invoice.docm from the mail of 3 May\"."}
	}
	return nil
}

// sampleNote is the note of a sample request: the file named first, then
// how to share it.
func (b *Bot) sampleNote(ctx context.Context, ref, file, how string) (string, error) {
	file = strings.TrimSpace(file)
	if file == "" {
		if err := b.needFileNamed(ctx, ref); err != nil {
			return "", err
		}
		return how, nil
	}
	if how == "" {
		return "File: " + file, nil
	}
	return "File: " + file + "\n" + how, nil
}
