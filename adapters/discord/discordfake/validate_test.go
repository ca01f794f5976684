package discordfake_test

import (
	"bytes"
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/threatdesk/threatdesk/adapters/discord/discordfake"
)

// TestModalInputValueAsDiscord: a text input's pre-filled value may be no
// longer than its max_length, nor than 4,000 characters; Discord refuses
// the modal with 50035 Invalid Form Body, in an action row as in a label.
func TestModalInputValueAsDiscord(t *testing.T) {
	t.Parallel()
	fake := newFake(t, true)
	respond := func(input map[string]any, labelled bool) (int, map[string]any) {
		t.Helper()
		in, _, err := fake.Prepare(fake.ComponentPayload(discordfake.Message{ID: "1", ChannelID: channel}, "1000000000000000010", "resolve_incident:7"))
		require.NoError(t, err)
		row := map[string]any{"type": 1, "components": []any{input}}
		if labelled {
			row = map[string]any{"type": 18, "label": "Comment", "component": input}
		} else {
			input["label"] = "Comment"
		}
		body, err := json.Marshal(map[string]any{"type": 9, "data": map[string]any{"custom_id": "f:x:", "title": "Resolve", "components": []any{row}}})
		require.NoError(t, err)
		resp, err := http.Post(fake.APIURL()+"interactions/"+in.ID+"/"+in.Token+"/callback", "application/json", bytes.NewReader(body))
		require.NoError(t, err)
		defer resp.Body.Close()
		var got map[string]any
		if resp.StatusCode != http.StatusNoContent {
			require.NoError(t, json.NewDecoder(resp.Body).Decode(&got))
		}
		return resp.StatusCode, got
	}
	input := func(value string, maxLen int) map[string]any {
		in := map[string]any{"type": 4, "custom_id": "comment", "style": 2, "value": value}
		if maxLen > 0 {
			in["max_length"] = maxLen
		}
		return in
	}
	for _, labelled := range []bool{false, true} {
		before := len(fake.Violations())
		status, _ := respond(input("0123456789", 10), labelled)
		require.Equal(t, http.StatusNoContent, status)
		status, _ = respond(input(strings.Repeat("é", 4000), 0), labelled)
		require.Equal(t, http.StatusNoContent, status)
		require.Len(t, fake.Violations(), before, "a value within its limits is accepted")

		status, got := respond(input("0123456789x", 10), labelled)
		require.Equal(t, http.StatusBadRequest, status)
		require.Equal(t, float64(50035), got["code"])
		require.Equal(t, "Invalid Form Body", got["message"])
		status, _ = respond(input(strings.Repeat("é", 4001), 0), labelled)
		require.Equal(t, http.StatusBadRequest, status)
		v := strings.Join(fake.Violations()[before:], "\n")
		require.Contains(t, v, "value is 11 characters, longer than max_length 10")
		require.Contains(t, v, "value is 4001 characters, limit 4000")
	}
}
