package config_test

import (
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/threatdesk/threatdesk/internal/config"
)

func TestSampleSettings(t *testing.T) {
	t.Parallel()
	c, err := config.Load(envOf(nil))
	require.NoError(t, err)
	require.Equal(t, int64(100<<20), c.File.Cases.SampleMaxBytes)
	require.Equal(t, 30*24*time.Hour, c.File.Cases.SampleRetention)

	c, err = config.Load(envOf(map[string]string{"THREATDESK_CONFIG": writeFile(t, "samples:\n  max_bytes: 2048\ncases:\n  sample_retention: 7d\n")}))
	require.NoError(t, err)
	require.Equal(t, int64(2048), c.File.Cases.SampleMaxBytes)
	require.Equal(t, int64(1<<30), c.File.Cases.SampleCaseMaxBytes, "1 GiB by default")
	require.Equal(t, 7*24*time.Hour, c.File.Cases.SampleRetention)
	c, err = config.Load(envOf(map[string]string{"THREATDESK_CONFIG": writeFile(t, "samples:\n  case_max_bytes: 5368709120\n")}))
	require.NoError(t, err)
	require.Equal(t, int64(5<<30), c.File.Cases.SampleCaseMaxBytes)

	for body, want := range map[string]string{
		"samples:\n  max_bytes: 2147483648\n":                   "samples.max_bytes 2147483648 must be between 1 and 1073741824",
		"samples:\n  max_bytes: -5\n":                           "samples.max_bytes -5",
		"samples:\n  max_bytes: 4096\n  case_max_bytes: 1024\n": "samples.case_max_bytes 1024 must be between samples.max_bytes (4096) and",
		"cases:\n  sample_retention: 10m\n":                     "cases.sample_retention 10m0s is too short",
		"samples:\n  max_byte: 10\n":                            "line 2: samples.max_byte is not a setting (did you mean samples.max_bytes?)",
	} {
		_, err := config.Load(envOf(map[string]string{"THREATDESK_CONFIG": writeFile(t, body)}))
		require.ErrorContains(t, err, want, body)
	}
}

func TestPublicURL(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		env   map[string]string
		base  string
		local bool
	}{
		{env: nil, base: "http://127.0.0.1:8080", local: true},
		{env: map[string]string{"THREATDESK_HTTP_ADDR": ":9000"}, base: "http://localhost:9000", local: true},
		{env: map[string]string{"THREATDESK_HTTP_ADDR": "[::]:9000"}, base: "http://localhost:9000", local: true},
		{env: map[string]string{"THREATDESK_HTTP_ADDR": "0.0.0.0:9000"}, base: "http://localhost:9000", local: true},
		{env: map[string]string{"THREATDESK_PUBLIC_URL": "https://threatdesk.example.com/"}, base: "https://threatdesk.example.com"},
		{env: map[string]string{"THREATDESK_PUBLIC_URL": "https://example.com/soc/threatdesk"}, base: "https://example.com/soc/threatdesk"},
	} {
		c, err := config.Load(envOf(tc.env))
		require.NoError(t, err)
		base, local := c.PublicBase()
		require.Equal(t, tc.base, base)
		require.Equal(t, tc.local, local)
	}
	for v, want := range map[string]string{
		"threatdesk.example.com":       "must be an http(s) URL",
		"ftp://threatdesk.example.com": "must be an http(s) URL",
		"https://user:pw@example.com":  "must be an http(s) URL",
		"https://example.com/?a=1":     "must not have a query",
		"https://example.com/#frag":    "must not have a query",
	} {
		_, err := config.Load(envOf(map[string]string{"THREATDESK_PUBLIC_URL": v}))
		require.ErrorContains(t, err, "THREATDESK_PUBLIC_URL", v)
		require.NotContains(t, err.Error(), "pw@", "a password in the URL is not repeated")
		require.ErrorContains(t, err, want, v)
	}
	c, err := config.Load(envOf(map[string]string{"THREATDESK_PUBLIC_URL": "http://threatdesk.example.com"}))
	require.NoError(t, err)
	require.Contains(t, strings.Join(c.Warnings(), "\n"), "THREATDESK_PUBLIC_URL is plain http")
	c, err = config.Load(envOf(map[string]string{"THREATDESK_PUBLIC_URL": "http://127.0.0.1:8080"}))
	require.NoError(t, err)
	require.NotContains(t, strings.Join(c.Warnings(), "\n"), "THREATDESK_PUBLIC_URL", "plain http on this machine is fine")
}
