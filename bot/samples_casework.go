package bot

import (
	"context"
	"errors"
	"fmt"

	"github.com/threatdesk/threatdesk/casework"
)

// CaseworkSamples adapts casework's file samples to the Samples the bot
// consumes.
type CaseworkSamples struct {
	svc *casework.Service
}

var _ Samples = (*CaseworkSamples)(nil)

// NewCaseworkSamples wraps svc.
//
//	err := b.UseSamples(bot.NewCaseworkSamples(cases), webHandler.Links())
func NewCaseworkSamples(svc *casework.Service) *CaseworkSamples { return &CaseworkSamples{svc: svc} }

func sampleView(s *casework.Sample) SampleView {
	return SampleView{ID: s.ID, Ref: s.Ref, Name: s.Name, Size: s.Size, MD5: s.MD5, SHA1: s.SHA1, SHA256: s.SHA256,
		Side: Side(s.Side), Uploader: s.Uploader.Name(), MatchText: s.MatchText, Deleted: s.DeletedAt != nil, Repeated: s.Repeated}
}

// mapSampleErr is mapErr for samples: a file that cannot be one is a
// *FileRefusedError; a body that broke off keeps its cause (a platform's
// *DeliveryError says whether to retry).
func mapSampleErr(err error) error {
	var tl *casework.TooLargeError
	switch {
	case err == nil:
		return nil
	case errors.As(err, &tl) && tl.Case:
		return &FileRefusedError{Msg: fmt.Sprintf("the case's samples would take more than its limit of %s in all (%s stored already). Ask the experts which files they still need.",
			casework.FormatBytes(tl.Limit), casework.FormatBytes(tl.Stored)), Err: err}
	case errors.As(err, &tl):
		return &FileRefusedError{Msg: fmt.Sprintf("it is larger than the limit of %s.", casework.FormatBytes(tl.Limit)), Err: err}
	case errors.Is(err, casework.ErrEmptySample):
		return &FileRefusedError{Msg: "it is empty.", Err: err}
	}
	var re *casework.ReadError
	if errors.As(err, &re) {
		return fmt.Errorf("read the file: %w", re.Err)
	}
	return mapErr(err)
}

// UploadLink implements Samples.
func (cs *CaseworkSamples) UploadLink(ctx context.Context, req UploadLinkRequest) (UploadLink, error) {
	by := casework.System()
	if req.By != nil {
		by = actor(*req.By, RoleMember, req.Org)
	}
	var link *casework.UploadLink
	var err error
	if req.Key != "" {
		link, err = cs.svc.IssueUploadLinkOnce(ctx, req.Ref, by, req.Key)
	} else {
		link, err = cs.svc.IssueUploadLink(ctx, req.Ref, by)
	}
	if err != nil {
		return UploadLink{}, mapErr(err)
	}
	return UploadLink{Token: link.Token, ExpiresAt: link.ExpiresAt}, nil
}

// StoreThreadFile implements Samples.
func (cs *CaseworkSamples) StoreThreadFile(ctx context.Context, f ThreadFile) (SampleView, error) {
	smp, err := cs.svc.StoreSample(ctx, casework.Upload{Ref: f.Ref, Source: casework.SourceThread, Actor: actor(f.Author, f.Role, f.Org),
		Chat:   casework.ChatRef{Platform: string(f.Chat.Platform), Workspace: f.Chat.Workspace, Channel: f.Chat.Channel, Message: f.Chat.Message},
		FileID: f.File.ID, Name: f.File.Name, Body: f.Body})
	if err != nil {
		return SampleView{}, mapSampleErr(err)
	}
	return sampleView(smp), nil
}

// DownloadLink implements Samples.
func (cs *CaseworkSamples) DownloadLink(ctx context.Context, ref string, sampleID int64, expert User) (DownloadLink, error) {
	dl, err := cs.svc.IssueDownloadLink(ctx, ref, sampleID, actor(expert, RoleExpert, ""))
	if err != nil {
		return DownloadLink{}, mapErr(err)
	}
	return DownloadLink{Token: dl.Token, ExpiresAt: dl.ExpiresAt, Sample: sampleView(&dl.Sample)}, nil
}

// List implements Samples.
func (cs *CaseworkSamples) List(ctx context.Context, ref string) ([]SampleView, error) {
	smps, err := cs.svc.Samples(ctx, casework.AllOrgs(), ref)
	if err != nil {
		return nil, mapErr(err)
	}
	out := make([]SampleView, len(smps))
	for i := range smps {
		out[i] = sampleView(&smps[i])
	}
	return out, nil
}

// MaxBytes implements Samples.
func (cs *CaseworkSamples) MaxBytes() int64 { return cs.svc.Config().SampleMaxBytes }

// decodeSampleStored turns casework's EventSampleStored into a CaseEvent.
func decodeSampleStored(p casework.SampleStoredEvent) CaseEvent {
	ev := CaseEvent{Kind: CaseSampleStored, Ref: p.Ref, Actor: p.Uploader.Name(), Side: Side(p.Side), Sample: &SampleEvent{
		ID: p.SampleID, Name: p.Name, Size: p.Size, MD5: p.MD5, SHA1: p.SHA1, SHA256: p.SHA256,
		Upload: p.Source == casework.SourceUpload, Address: p.Address, MatchText: p.MatchText, Resumed: p.Resumed,
	}}
	if p.Chat != nil {
		ev.Chat = Ref{Platform: Platform(p.Chat.Platform), Workspace: p.Chat.Workspace, Channel: p.Chat.Channel, Message: p.Chat.Message}
	}
	return ev
}
