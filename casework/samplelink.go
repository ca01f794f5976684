package casework

import (
	"context"
	"crypto/subtle"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/threatdesk/threatdesk/internal/secrets"
)

// MaxUploadLinkKey bounds the key of IssueUploadLinkOnce.
const MaxUploadLinkKey = 200

// uploadTokenAAD binds a sealed upload token to its link: sealed for one
// link, it does not open as another's.
func uploadTokenAAD(hash []byte) []byte {
	return append([]byte("threatdesk/upload-link-token/v1\x00"), hash...)
}

// IssueUploadLinkOnce is IssueUploadLink made idempotent by key: the first
// call with a key issues the link and records it on the case's timeline, as
// IssueUploadLink does; every later call with the same key, on any replica,
// returns that same link (Repeated set) and records nothing. The bot keys
// the link it posts when a case goes to file_sample_needed by the outbox
// event it renders ("outbox:<id>"), so a retried or re-leased delivery
// posts one link, not one per attempt.
//
// To give the token out again it is kept sealed (AES-256-GCM under a
// subkey of THREATDESK_SECRET_KEY, bound to the link), beside its SHA-256,
// which is still what a presented token is looked up by: the tables alone
// yield no usable link. A key already used for another case is refused
// (ErrInvalid). A repeated call returns the link even when it was used or
// has expired since (posting it again then says nothing new: the upload
// page refuses it), but not once the case is closed or withdrawn.
//
//	link, err := svc.IssueUploadLinkOnce(ctx, "EOD-12", casework.System(), "outbox:4711")
func (s *Service) IssueUploadLinkOnce(ctx context.Context, ref string, by Actor, key string) (*UploadLink, error) {
	if key == "" || len(key) > MaxUploadLinkKey {
		return nil, fmt.Errorf("issue upload link: the key must be 1 to %d bytes: %w", MaxUploadLinkKey, ErrInvalid)
	}
	if err := by.validate(); err != nil {
		return nil, err
	}
	number, err := ParseRef(ref)
	if err != nil {
		return nil, err
	}
	token, hash, err := newToken()
	if err != nil {
		return nil, err
	}
	sealed, err := s.cfg.Key.Seal(secrets.PurposeTokenEncryption, []byte(token), uploadTokenAAD(hash))
	if err != nil {
		return nil, fmt.Errorf("seal upload link token: %w", err)
	}
	var out *UploadLink
	var changed *row
	err = s.inTx(ctx, "issue upload link for "+FormatRef(number), func(tx pgx.Tx) error {
		// The case's row lock orders concurrent calls with the same key:
		// the second one finds the first one's link.
		x, now, err := s.lockCase(ctx, tx, by.Viewer(), number)
		if err != nil {
			return err
		}
		if !x.Status.Open() {
			return &TransitionError{Ref: x.Ref, From: x.Status, Role: by.Role,
				Reason: fmt.Sprintf("%s is %s: samples can be sent while a case is open", x.Ref, x.Status.Label())}
		}
		prev, err := s.keyedUploadLink(ctx, tx, key, x)
		if err != nil || prev != nil {
			out = prev
			return err
		}
		exp := now.Add(UploadLinkTTL)
		if _, err := tx.Exec(ctx, `INSERT INTO case_upload_links (token_hash, case_number, issued_platform, issued_workspace,
 issued_user, issued_name, issued_at, expires_at, issue_key, token_sealed) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)`,
			hash, x.Number, by.Platform, by.Workspace, by.UserID, by.DisplayName, now, exp, key, sealed); err != nil {
			return fmt.Errorf("store upload link of %s: %w", x.Ref, err)
		}
		out = &UploadLink{Ref: x.Ref, Link: linkID(hash), Token: token, ExpiresAt: exp}
		if err := s.record(ctx, tx, x, now, by, EventUploadLinkIssued,
			UploadLinkIssuedEvent{Ref: x.Ref, Link: out.Link, ExpiresAt: exp, By: by}, false); err != nil {
			return err
		}
		changed = x
		return s.saveRecord(ctx, tx, x, now)
	})
	if err != nil {
		s.countRefusal(err)
		return nil, err
	}
	if changed != nil {
		changed.runCommitted()
		s.smp.linkIssued.WithLabelValues("upload").Inc()
	}
	return out, nil
}

// keyedUploadLink returns the link key issued before for case x, or nil.
func (s *Service) keyedUploadLink(ctx context.Context, tx pgx.Tx, key string, x *row) (*UploadLink, error) {
	var number int64
	var hash, sealed []byte
	var link UploadLink
	err := tx.QueryRow(ctx, `SELECT case_number, token_hash, token_sealed, expires_at FROM case_upload_links WHERE issue_key = $1`, key).
		Scan(&number, &hash, &sealed, &link.ExpiresAt)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("look up upload link %q: %w", key, err)
	}
	if number != x.Number {
		return nil, fmt.Errorf("upload link key %q was used for another case, not %s: %w", key, x.Ref, ErrInvalid)
	}
	plain, err := s.cfg.Key.Open(secrets.PurposeTokenEncryption, sealed, uploadTokenAAD(hash))
	if err != nil {
		return nil, fmt.Errorf("open the sealed token of upload link %s of %s: %w", linkID(hash), x.Ref, err)
	}
	if h, ok := tokenHash(string(plain)); !ok || subtle.ConstantTimeCompare(h, hash) != 1 {
		return nil, fmt.Errorf("the sealed token of upload link %s of %s is not the link's", linkID(hash), x.Ref)
	}
	link.Ref, link.Link, link.Token, link.Repeated = x.Ref, linkID(hash), string(plain), true
	link.ExpiresAt = link.ExpiresAt.UTC()
	return &link, nil
}
