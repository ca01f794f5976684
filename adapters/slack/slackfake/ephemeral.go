package slackfake

import (
	"encoding/json"
	"fmt"
	"strings"
	"time"
)

// PressEphemeral builds the block_actions payload of user pressing the
// button whose action_id is action (or action/N) on an ephemeral answer
// the app sent through a response URL in channel. Slack marks the
// container ephemeral and gives a fresh trigger_id and response_url; the
// message itself is not in the payload (only its sender sees it).
// https://docs.slack.dev/reference/interaction-payloads/block_actions-payload
func (s *Server) PressEphemeral(r Response, channel, user, action string) (map[string]any, error) {
	var blocks []map[string]any
	if err := json.Unmarshal(r.Blocks, &blocks); err != nil {
		return nil, fmt.Errorf("answer blocks: %w", err)
	}
	for _, b := range blocks {
		if b["type"] != "actions" {
			continue
		}
		els, _ := b["elements"].([]any)
		for _, e := range els {
			el, _ := e.(map[string]any)
			id, _ := el["action_id"].(string)
			if id != action && !strings.HasPrefix(id, action+"/") {
				continue
			}
			ts := fmt.Sprintf("%d.%06d", r.At.Unix(), r.At.Nanosecond()/1000)
			act := map[string]any{"type": "button", "action_id": id, "block_id": b["block_id"], "text": el["text"],
				"value": el["value"], "action_ts": fmt.Sprintf("%d.%06d", time.Now().Unix(), 2)}
			c := s.channel(channel)
			team := s.TeamOf(channel)
			return map[string]any{
				"type": "block_actions", "token": "deprecated-verification-token", "api_app_id": "A0FAKE",
				"user":       map[string]any{"id": user, "username": strings.ToLower(user), "name": strings.ToLower(user), "team_id": s.userTeam(user, team)},
				"team":       map[string]any{"id": team, "domain": "fake"},
				"channel":    map[string]any{"id": channel, "name": c.Name},
				"container":  map[string]any{"type": "message", "message_ts": ts, "channel_id": channel, "is_ephemeral": true},
				"trigger_id": s.newTrigger(team), "response_url": s.responseURL(responseOrigin(r, channel, user)),
				"actions": []any{act}, "state": map[string]any{"values": map[string]any{}},
			}, nil
		}
	}
	return nil, fmt.Errorf("no button %q on the answer %s", action, r.ID)
}

// responseOrigin is the origin of an interaction on r, an answer posted
// through a response URL in channel: an in_channel answer is also a
// message in the channel.
func responseOrigin(r Response, channel, user string) origin {
	return origin{channel: channel, user: user, source: r.TS, ephemeral: r.ResponseType != "in_channel"}
}
