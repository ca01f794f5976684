package oncall_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"gopkg.in/yaml.v3"

	"github.com/threatdesk/threatdesk/internal/config"
	"github.com/threatdesk/threatdesk/oncall"
)

func TestParseHandover(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in      string
		want    oncall.Handover
		wantErr string
	}{
		{in: "Mon 09:00", want: oncall.Handover{Period: oncall.Weekly, Weekday: time.Monday, Hour: 9}},
		{in: "monday 9:00", want: oncall.Handover{Period: oncall.Weekly, Weekday: time.Monday, Hour: 9}},
		{in: "SUN 23:59", want: oncall.Handover{Period: oncall.Weekly, Weekday: time.Sunday, Hour: 23, Minute: 59}},
		{in: "Saturday 00:00", want: oncall.Handover{Period: oncall.Weekly, Weekday: time.Saturday}},
		{in: "daily 09:00", want: oncall.Handover{Period: oncall.Daily, Hour: 9}},
		{in: "  Daily   17:30 ", want: oncall.Handover{Period: oncall.Daily, Hour: 17, Minute: 30}},
		{in: "", wantErr: "expected two words"},
		{in: "Mon", wantErr: "expected two words"},
		{in: "Mon 09:00 Europe/London", wantErr: "expected two words"},
		{in: "weekly 09:00", wantErr: `"weekly" is not a weekday or daily`},
		{in: "Mo 09:00", wantErr: `"Mo" is not a weekday or daily`},
		{in: "Mon 9", wantErr: `"9" is not a time such as 09:00`},
		{in: "Mon 9am", wantErr: `"9am" is not a time such as 09:00`},
		{in: "Mon 09:0", wantErr: `"09:0" is not a time such as 09:00`},
		{in: "Mon 24:00", wantErr: `"24:00" is not a time between 00:00 and 23:59`},
		{in: "Mon 09:60", wantErr: `"09:60" is not a time between 00:00 and 23:59`},
		{in: "Mon -1:00", wantErr: `"-1:00" is not a time between 00:00 and 23:59`},
	}
	for _, tc := range tests {
		t.Run(tc.in, func(t *testing.T) {
			t.Parallel()
			got, err := oncall.ParseHandover(tc.in)
			if tc.wantErr != "" {
				require.ErrorContains(t, err, tc.wantErr)
				require.ErrorContains(t, err, `e.g. "Mon 09:00", or "daily 09:00"`, "says how to fix it")
				return
			}
			require.NoError(t, err)
			require.Equal(t, tc.want, got)
			again, err := oncall.ParseHandover(got.String())
			require.NoError(t, err)
			require.Equal(t, got, again, "String round-trips")
		})
	}
	require.Equal(t, "Mon 09:00", oncall.Handover{Period: oncall.Weekly, Weekday: time.Monday, Hour: 9}.String())
	require.Equal(t, "daily 07:05", oncall.Handover{Period: oncall.Daily, Hour: 7, Minute: 5}.String())
}

// decode reads an oncall block with the config file's rules (internal/config).
func decode(t *testing.T, doc string) (oncall.Config, error) {
	t.Helper()
	var f struct {
		Oncall oncall.Config `yaml:"oncall"`
	}
	err := config.Decode([]byte(doc), &f)
	return f.Oncall, err
}

func TestConfigYAML(t *testing.T) {
	t.Parallel()
	c, err := decode(t, `
oncall:
  handover: "Mon 09:00"
  rotation:
    - slack: U0EXPERT1
    - discord: "100000000000000001"
  page_after: 20m
`)
	require.NoError(t, err)
	require.Equal(t, oncall.Config{
		Handover:  oncall.Handover{Period: oncall.Weekly, Weekday: time.Monday, Hour: 9},
		Rotation:  []oncall.Member{{Platform: "slack", UserID: "U0EXPERT1"}, {Platform: "discord", UserID: "100000000000000001"}},
		PageAfter: 20 * time.Minute,
	}, c)
	require.NoError(t, c.WithDefaults().Validate())

	c, err = decode(t, "oncall:\n  handover: daily 08:00\n  rotation: [{slack: U0EXPERT1}]\n  page_after: 1d\n")
	require.NoError(t, err)
	require.Equal(t, 24*time.Hour, c.PageAfter, "days are allowed as in every duration of the file")

	out, err := yaml.Marshal(oncall.Config{Handover: oncall.Handover{Period: oncall.Daily, Hour: 8}, Rotation: []oncall.Member{{Platform: "slack", UserID: "U1AB"}}, PageAfter: time.Hour})
	require.NoError(t, err)
	require.Equal(t, "handover: daily 08:00\nrotation:\n    - slack: U1AB\npage_after: 1h0m0s\n", string(out))
}

func TestConfigYAMLErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		doc  string
		want []string
	}{
		{"unknown key", "oncall:\n  handover: Mon 09:00\n  page-after: 5m\n", []string{"line 3: oncall.page-after is not a setting (did you mean oncall.page_after?)"}},
		{"bad handover", "oncall:\n  handover: Monday morning\n", []string{`line 2: oncall.handover "Monday morning" is not a hand-over`}},
		{"handover not a string", "oncall:\n  handover: [Mon, 09:00]\n", []string{"line 2: oncall.handover must be a string"}},
		{"member with two accounts", "oncall:\n  rotation:\n    - {slack: U0A, discord: \"100000000000000001\"}\n", []string{"line 3: an oncall.rotation entry is one account"}},
		{"member on another platform", "oncall:\n  rotation:\n    - teams: U0A\n", []string{"line 3: an oncall.rotation entry is one account"}},
		{"member as a bare id", "oncall:\n  rotation:\n    - U0A\n", []string{"line 3: an oncall.rotation entry is one account"}},
		{"bad duration", "oncall:\n  page_after: soon\n", []string{`line 2: oncall.page_after: "soon" is not a duration`}},
		{"duration as a number", "oncall:\n  page_after: 15\n", []string{"line 2: oncall.page_after: a duration must be a string"}},
		{
			"every type problem at once",
			"oncall:\n  handover: whenever\n  rotation:\n    - U0A\n  page_after: soon\n",
			[]string{"line 2: oncall.handover", "line 4: an oncall.rotation entry", `line 5: oncall.page_after: "soon" is not a duration`},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, err := decode(t, tc.doc)
			for _, w := range tc.want {
				require.ErrorContains(t, err, w)
			}
		})
	}
}

func TestConfigDefaults(t *testing.T) {
	t.Parallel()
	c := oncall.Config{}.WithDefaults()
	require.Equal(t, oncall.DefaultPageAfter, c.PageAfter)
	require.False(t, c.Enabled())
	require.NoError(t, c.Validate(), "no oncall block: valid, no rotation")

	c = oncall.Config{PageAfter: time.Hour}.WithDefaults()
	require.Equal(t, time.Hour, c.PageAfter, "a set value is kept")
}

func TestConfigValidate(t *testing.T) {
	t.Parallel()
	mon9 := oncall.Handover{Period: oncall.Weekly, Weekday: time.Monday, Hour: 9}
	ok := oncall.Config{Handover: mon9, Rotation: []oncall.Member{alice, bob}}
	tests := []struct {
		name string
		mod  func(*oncall.Config)
		want []string
	}{
		{"rotation without handover", func(c *oncall.Config) { c.Handover = oncall.Handover{} },
			[]string{`oncall.handover is missing: set when the pager passes to the next expert, e.g. "Mon 09:00"`}},
		{"handover without rotation", func(c *oncall.Config) { c.Rotation = nil },
			[]string{"oncall.rotation is empty: list the experts who hold the pager"}},
		{"handover out of range", func(c *oncall.Config) { c.Handover.Hour = 25 },
			[]string{"oncall.handover: 25:00 is not a time of day"}},
		{"unknown platform", func(c *oncall.Config) { c.Rotation[1].Platform = "teams" },
			[]string{`oncall.rotation[1]: platform "teams" is not slack or discord`}},
		{"mention not id", func(c *oncall.Config) { c.Rotation[0].UserID = "@alice" },
			[]string{`oncall.rotation[0]: "@alice" is not a slack user id: use the id`}},
		{"duplicate", func(c *oncall.Config) { c.Rotation = append(c.Rotation, alice) },
			[]string{"oncall.rotation[2]: slack:U0ALICE is already oncall.rotation[0]: list each expert once"}},
		{"page_after too short", func(c *oncall.Config) { c.PageAfter = 30 * time.Second },
			[]string{"oncall.page_after 30s is too short: use at least 1m (default 15m)"}},
		{"page_after negative", func(c *oncall.Config) { c.PageAfter = -time.Minute },
			[]string{"oncall.page_after -1m0s is too short"}},
		{"all problems together", func(c *oncall.Config) {
			c.Handover = oncall.Handover{}
			c.Rotation = append(c.Rotation, bob)
			c.PageAfter = time.Second
		}, []string{"oncall.handover is missing", "oncall.rotation[2]", "oncall.page_after 1s"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c := ok
			c.Rotation = append([]oncall.Member(nil), ok.Rotation...)
			tc.mod(&c)
			err := c.WithDefaults().Validate()
			for _, w := range tc.want {
				require.ErrorContains(t, err, w)
			}
		})
	}
	require.NoError(t, ok.WithDefaults().Validate())
}
