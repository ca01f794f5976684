package casework_test

import (
	"bytes"
	"context"
	"io"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/threatdesk/threatdesk/casework"
)

// BenchmarkSampleRoundTrip stores a 16 MiB sample through an upload link
// (hashing, sealing and writing 16 chunks in one transaction) and reads it
// back decrypted, with the real chunk size. Bytes per second are of one way.
func BenchmarkSampleRoundTrip(b *testing.B) {
	f := setup(b)
	ctx := context.Background()
	c := f.into(b, "contoso", casework.StatusInProgress)
	plain := sampleBytes(16 << 20)
	b.SetBytes(int64(len(plain)))
	b.ResetTimer()
	for b.Loop() {
		link, err := f.svc.IssueUploadLink(ctx, c.Ref, casework.System())
		require.NoError(b, err)
		smp, err := f.svc.StoreSample(ctx, casework.Upload{Token: link.Token, Name: "s.bin", Body: bytes.NewReader(plain)})
		require.NoError(b, err)
		dl, err := f.svc.IssueDownloadLink(ctx, c.Ref, smp.ID, expert("U-expert"))
		require.NoError(b, err)
		d, err := f.svc.OpenSample(ctx, dl.Token, "", nil)
		require.NoError(b, err)
		n, err := io.Copy(io.Discard, d.Body)
		require.NoError(b, err)
		require.EqualValues(b, len(plain), n)
	}
}
