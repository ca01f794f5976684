package discord_test

import (
	"bufio"
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/bwmarrin/discordgo"
	"github.com/stretchr/testify/require"

	"github.com/threatdesk/threatdesk/adapters/discord"
	"github.com/threatdesk/threatdesk/bot"
)

// samplesDir holds Discord's published payloads (see testdata/README.md).
const samplesDir = "testdata"

// sampleSHA256 are the checksums of the published samples, so that an
// edited copy is noticed.
var sampleSHA256 = map[string]string{
	"discord-interaction-command.json":   "5758b0648cf66f0f1d3e0c389797ca781f5b5ff10f20176b3ae1d2de402bed19",
	"discord-interaction-component.json": "304e2cf7b5b29c5620637d8e060341b3bd483953041f1e0852f7911688cd042d",
	"discord-interaction-ping.json":      "ff2c13d52b89667b40430111e4e68aff1ff5fccf18d81e1c80fc332a8fc5d212",
}

func sample(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(samplesDir, name))
	require.NoError(t, err)
	if want, ok := sampleSHA256[name]; ok {
		sum := sha256.Sum256(b)
		require.Equal(t, want, hex.EncodeToString(sum[:]), "%s is the published sample", name)
	}
	return b
}

type vector struct{ pub, ts, sig string }

// vectorB reads vector B from the shared vector file.
func vectorB(t *testing.T) vector {
	t.Helper()
	raw := sample(t, "discord-ed25519-vector.txt")
	var v vector
	inB := false
	sc := bufio.NewScanner(bytes.NewReader(raw))
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "[vector-B") {
			inB = true
		}
		if !inB {
			continue
		}
		val := func(prefix string) string { return strings.TrimSpace(strings.TrimPrefix(line, prefix)) }
		switch {
		case strings.HasPrefix(line, "public key (hex"):
			v.pub = strings.TrimSpace(line[strings.LastIndex(line, ":")+1:])
		case strings.HasPrefix(line, "X-Signature-Timestamp:"):
			v.ts = val("X-Signature-Timestamp:")
		case strings.HasPrefix(line, "X-Signature-Ed25519:"):
			v.sig = val("X-Signature-Ed25519:")
		}
	}
	require.Len(t, v.pub, 64)
	require.NotEmpty(t, v.ts)
	require.Len(t, v.sig, 128)
	return v
}

func TestSamplePingWithVectorB(t *testing.T) {
	t.Parallel()
	v := vectorB(t)
	body := sample(t, "discord-interaction-ping.json")
	sec, err := strconv.ParseInt(v.ts, 10, 64)
	require.NoError(t, err)
	f := setup(t, func(c *discord.Config) {
		c.PublicKey = v.pub
		c.Now = func() time.Time { return time.Unix(sec, 0) }
	})
	srv := serve(t, f.adapter)

	// discordgo's own verifier agrees with the vector.
	req, _ := http.NewRequest(http.MethodPost, "/", bytes.NewReader(body))
	req.Header.Set("X-Signature-Timestamp", v.ts)
	req.Header.Set("X-Signature-Ed25519", v.sig)
	pub, _ := hex.DecodeString(v.pub)
	require.True(t, discordgo.VerifyInteraction(req, ed25519.PublicKey(pub)))

	status, out := post(t, srv, body, v.ts, v.sig)
	require.Equal(t, 200, status)
	require.JSONEq(t, `{"type":1}`, string(out))
	status, _ = post(t, srv, append(body, '}'), v.ts, v.sig)
	require.Equal(t, 401, status, "one byte appended")
}

func TestSampleInteractionsThroughGatewayAndHTTP(t *testing.T) {
	t.Parallel()
	command := sample(t, "discord-interaction-command.json")
	component := sample(t, "discord-interaction-component.json")

	f := setup(t)
	f.start(t)
	// The samples' ids date from when they were written, and the gateway
	// drops an interaction seconds old: over it they get fresh ids, as
	// Discord's are.
	fresh := func(raw []byte) []byte {
		var m map[string]any
		require.NoError(t, json.Unmarshal(raw, &m))
		m["id"] = f.fake.NextID()
		out, err := json.Marshal(m)
		require.NoError(t, err)
		return out
	}
	// The sample slash command is someone else's (/cardsearch): a private note.
	in, err := f.fake.InteractRaw(fresh(command))
	require.NoError(t, err)
	cb, err := in.Wait(5 * time.Second)
	require.NoError(t, err)
	require.Equal(t, 4, cb.Type)
	require.Contains(t, string(cb.Data), `"flags":64`)

	// The sample button reaches the bot as an action on its message.
	in, err = f.fake.InteractRaw(fresh(component))
	require.NoError(t, err)
	cb, err = in.Wait(5 * time.Second)
	require.NoError(t, err)
	require.Equal(t, 6, cb.Type)
	f.h.mu.Lock()
	require.Len(t, f.h.actions, 1)
	a := f.h.actions[0]
	f.h.mu.Unlock()
	require.Equal(t, bot.ActionID("click_one"), a.Action)
	require.Equal(t, bot.Ref{Platform: bot.Discord, Workspace: "290926798626357999", Channel: "345626669114982402", Message: "844397162624450620"}, a.Message)
	require.Equal(t, "53908232506183680", a.User.ID)

	// The same samples over HTTP, signed, answered in the response body and
	// accepted by the fake as valid callbacks.
	g := setup(t)
	srv := serve(t, g.adapter)
	for _, raw := range [][]byte{command, component} {
		in, err := g.fake.PrepareRaw(raw)
		require.NoError(t, err)
		ts := strconv.FormatInt(time.Now().Unix(), 10)
		status, out := post(t, srv, raw, ts, sign(g.priv, ts, raw))
		require.Equal(t, 200, status)
		require.NoError(t, g.fake.AnsweredOverHTTP(in, out))
	}
	require.Empty(t, f.fake.Violations())
	require.Empty(t, g.fake.Violations())
}
