package discordfake_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/threatdesk/threatdesk/adapters/discord/discordfake"
)

func selectOf(n int) map[string]any {
	var opts []any
	for i := range n {
		opts = append(opts, map[string]any{"label": fmt.Sprintf("option %d", i), "value": fmt.Sprintf("v%d", i)})
	}
	return map[string]any{"type": 3, "custom_id": "pick", "options": opts}
}

// TestModalLabelsAsDiscord: a modal may hold labels around a text input or
// a string select (1 to 25 options); an input inside a label carries no
// label of its own; a submission takes only a select's own options, and a
// message's select is chosen the same way.
func TestModalLabelsAsDiscord(t *testing.T) {
	t.Parallel()
	fake := newFake(t, true)
	respond := func(modal map[string]any) int {
		t.Helper()
		in, _, err := fake.Prepare(fake.ComponentPayload(discordfake.Message{ID: "1", ChannelID: channel}, "1000000000000000010", "resolve_incident:7"))
		require.NoError(t, err)
		body, err := json.Marshal(map[string]any{"type": 9, "data": modal})
		require.NoError(t, err)
		resp, err := http.Post(fake.APIURL()+"interactions/"+in.ID+"/"+in.Token+"/callback", "application/json", bytes.NewReader(body))
		require.NoError(t, err)
		resp.Body.Close()
		return resp.StatusCode
	}
	good := map[string]any{"custom_id": "f:resolve_incident:i=7", "title": "Resolve", "components": []any{
		map[string]any{"type": 18, "label": "Classification", "component": selectOf(3)},
		map[string]any{"type": 18, "label": "Comment", "component": map[string]any{"type": 4, "custom_id": "comment", "style": 2}},
	}}
	require.Equal(t, http.StatusNoContent, respond(good))
	require.Empty(t, fake.Violations())

	tooMany := map[string]any{"custom_id": "f:x:", "title": "x", "components": []any{map[string]any{"type": 18, "label": "Pick", "component": selectOf(26)}}}
	require.Equal(t, http.StatusBadRequest, respond(tooMany))
	doubled := map[string]any{"custom_id": "f:x:", "title": "x", "components": []any{
		map[string]any{"type": 18, "label": "Comment", "component": map[string]any{"type": 4, "custom_id": "c", "style": 1, "label": "Comment"}}}}
	require.Equal(t, http.StatusBadRequest, respond(doubled))
	v := strings.Join(fake.Violations(), "\n")
	require.Contains(t, v, "has 26 options, must be 1..25")
	require.Contains(t, v, "has a label of its own")

	var modal discordfake.ModalBody
	b, err := json.Marshal(good)
	require.NoError(t, err)
	require.NoError(t, json.Unmarshal(b, &modal))
	p, err := fake.SubmitModal(channel, "1000000000000000010", modal, map[string]string{"pick": "v2", "comment": "ok"}, nil)
	require.NoError(t, err)
	got, err := json.Marshal(p["data"])
	require.NoError(t, err)
	require.Contains(t, string(got), `"component":{"custom_id":"pick","id":100,"type":3,"values":["v2"]}`)
	_, err = fake.SubmitModal(channel, "1000000000000000010", modal, map[string]string{"pick": "v9"}, nil)
	require.ErrorContains(t, err, `no option "v9"`)

	var row discordfake.Component
	b, err = json.Marshal(map[string]any{"type": 1, "components": []any{selectOf(2)}})
	require.NoError(t, err)
	require.NoError(t, json.Unmarshal(b, &row))
	m := discordfake.Message{ID: "2", ChannelID: channel, Components: []discordfake.Component{row}}
	val, ok := discordfake.OptionLabeled(m, "pick", "option 1")
	require.True(t, ok)
	p, err = fake.SelectPayload(m, "1000000000000000010", "pick", val)
	require.NoError(t, err)
	require.Equal(t, []string{"v1"}, p["data"].(map[string]any)["values"])
	_, err = fake.SelectPayload(m, "1000000000000000010", "pick", "v7")
	require.ErrorContains(t, err, "no option")
}
