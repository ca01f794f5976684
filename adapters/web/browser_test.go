package web_test

import (
	"context"
	"fmt"
	"html"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	cdpbrowser "github.com/chromedp/cdproto/browser"
	"github.com/chromedp/chromedp"
	"github.com/stretchr/testify/require"

	"github.com/threatdesk/threatdesk/adapters/web"
	"github.com/threatdesk/threatdesk/bot"
	"github.com/threatdesk/threatdesk/casework"
)

// The case tracker in a real browser: Debian's chromium, driven over the
// DevTools protocol by chromedp. One browser serves the package's tests
// (started by the first, stopped by TestMain); each test gets a browser
// context of its own (its own cookies) and a tab in it. Tests wait on
// page loads and DOM conditions, never on time.
//
// Without chromium the browser tests fail when CI=true (.ci/run installs
// it) and are skipped elsewhere, saying so.
//
// Screenshots of each page go to the test's temporary directory (their
// paths are logged; go test deletes the directory after the test), or to
// THREATDESK_SCREENSHOT_DIR when it is set, to keep them.
// THREATDESK_UPDATE_SCREENSHOTS=1 also writes the README's pictures,
// docs/case.png and docs/report.png.

// sharedBrowser is the package's one Chromium.
type sharedBrowser struct {
	once sync.Once
	// ctx is the browser's first tab: the parent of every test's browser
	// context.
	ctx  context.Context
	stop func()
	dir  string
	err  error
}

// chrome is shared by the package's browser tests (test code only).
var chrome sharedBrowser

func TestMain(m *testing.M) {
	code := m.Run()
	chrome.close()
	os.Exit(code)
}

// chromiumPath finds the browser: Debian's chromium package.
func chromiumPath() string {
	for _, n := range []string{"chromium", "chromium-browser"} {
		if p, err := exec.LookPath(n); err == nil {
			return p
		}
	}
	return ""
}

// launchFlags are the flags that work on these machines: headless, no
// sandbox (root, containers), and no background connections (Chromium's
// own connections are refused by the closed network, and it gives up on
// the page when they fail).
func launchFlags(path, dir string) []chromedp.ExecAllocatorOption {
	return []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(path),
		chromedp.Headless,
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.Flag("disable-quic", true),
		chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.Flag("disable-extensions", true),
		chromedp.Flag("disable-default-apps", true),
		chromedp.Flag("password-store", "basic"),
		chromedp.Flag("use-mock-keychain", true),
		chromedp.UserDataDir(dir),
		chromedp.WindowSize(1280, 900),
	}
}

func (b *sharedBrowser) start(path string) {
	b.dir, b.err = os.MkdirTemp("", "threatdesk-chromium-")
	if b.err != nil {
		return
	}
	alloc, cancelAlloc := chromedp.NewExecAllocator(context.Background(), launchFlags(path, b.dir)...)
	ctx, cancel := chromedp.NewContext(alloc)
	b.ctx, b.stop = ctx, func() { cancel(); cancelAlloc() }
	started := make(chan error, 1)
	go func() { started <- chromedp.Do(ctx) }()
	select {
	case b.err = <-started:
	case <-time.After(2 * time.Minute):
		b.err = fmt.Errorf("chromium (%s) did not start within 2 minutes", path)
	}
	if b.err != nil {
		b.err = fmt.Errorf("start chromium (%s): %w", path, b.err)
	}
}

func (b *sharedBrowser) close() {
	if b.stop != nil {
		b.stop()
	}
	if b.dir != "" {
		_ = os.RemoveAll(b.dir)
	}
}

// tab is a test's tab, in a browser context of its own.
type tab struct {
	ctx context.Context
	dir string // where its screenshots and downloads go
}

func newTab(t *testing.T) *tab {
	t.Helper()
	path := chromiumPath()
	if path == "" {
		msg := "chromium is not installed (apt-get install chromium; .ci/run installs it), so the pages are not tested in a browser"
		if os.Getenv("CI") == "true" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	chrome.once.Do(func() { chrome.start(path) })
	require.NoError(t, chrome.err)
	ctx, cancel := chromedp.NewContext(chrome.ctx, chromedp.WithNewBrowserContext())
	t.Cleanup(cancel)
	require.NoError(t, chromedp.Do(ctx), "open a tab")
	ctx, cancelTimeout := context.WithTimeout(ctx, 3*time.Minute)
	t.Cleanup(cancelTimeout)
	dir := t.TempDir()
	if keep := os.Getenv("THREATDESK_SCREENSHOT_DIR"); keep != "" {
		dir = filepath.Join(keep, t.Name())
		require.NoError(t, os.MkdirAll(dir, 0o755))
	}
	return &tab{ctx: ctx, dir: dir}
}

// open loads u and returns the HTTP status of the page it lands on.
func (b *tab) open(t *testing.T, u string) int {
	t.Helper()
	resp, err := chromedp.RunResponse(b.ctx, chromedp.Navigate(u))
	require.NoError(t, err, "open %s", u)
	return int(resp.Status)
}

// click clicks sel, waits for the page it leads to and returns its status.
func (b *tab) click(t *testing.T, sel string) int {
	t.Helper()
	resp, err := chromedp.RunResponse(b.ctx, chromedp.Click(chromedp.CSS(sel)))
	require.NoError(t, err, "click %s", sel)
	return int(resp.Status)
}

// signIn opens a sign-in link, checks that its page names who (name and
// org) and presses Sign in, which lands on the case list.
func (b *tab) signIn(t *testing.T, link, who string) {
	t.Helper()
	require.Equal(t, 200, b.open(t, link))
	require.Equal(t, "Sign in to threatdesk's case tracker as "+who+"?", b.text(t, "main h1"))
	require.Equal(t, 200, b.click(t, "#signin"))
}

func (b *tab) do(t *testing.T, steps ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	require.NoError(t, chromedp.Do(b.ctx, steps...))
}

func (b *tab) text(t *testing.T, sel string) string {
	t.Helper()
	s, err := chromedp.Run(b.ctx, chromedp.TextContent(chromedp.CSS(sel)))
	require.NoError(t, err, "text of %s", sel)
	return strings.TrimSpace(s)
}

// eval evaluates a read-only expression in the page (DevTools; the page
// itself runs no script).
func eval[T any](t *testing.T, b *tab, expr string) T {
	t.Helper()
	v, err := chromedp.Run(b.ctx, chromedp.Evaluate[T](expr))
	require.NoError(t, err, "evaluate %s", expr)
	return v
}

// texts are the trimmed text contents of every element matching sel.
func (b *tab) texts(t *testing.T, sel string) []string {
	t.Helper()
	return eval[[]string](t, b, fmt.Sprintf(`[...document.querySelectorAll(%q)].map(e => e.textContent.trim())`, sel))
}

func (b *tab) location(t *testing.T) string {
	t.Helper()
	u, err := chromedp.Run(b.ctx, chromedp.Location())
	require.NoError(t, err)
	return u
}

// shot saves a screenshot of the whole page as name.png in the test's
// directory and logs its path; with THREATDESK_UPDATE_SCREENSHOTS=1, a
// name in docs also goes to the repository's docs/.
func (b *tab) shot(t *testing.T, name string, docs bool) {
	t.Helper()
	png, err := chromedp.Run(b.ctx, chromedp.FullScreenshot(100))
	require.NoError(t, err, "screenshot %s", name)
	p := filepath.Join(b.dir, name+".png")
	require.NoError(t, os.WriteFile(p, png, 0o644))
	t.Logf("screenshot of the %s page: %s", name, p)
	if docs && os.Getenv("THREATDESK_UPDATE_SCREENSHOTS") == "1" {
		d := filepath.Join("..", "..", "docs", name+".png")
		require.NoError(t, os.MkdirAll(filepath.Dir(d), 0o755))
		require.NoError(t, os.WriteFile(d, png, 0o644))
		t.Logf("updated %s", d)
	}
}

// download clicks sel, which downloads a file, and returns the file.
func (b *tab) download(t *testing.T, sel string) []byte {
	t.Helper()
	dir := filepath.Join(b.dir, "downloads")
	require.NoError(t, os.MkdirAll(dir, 0o755))
	events := true
	_, err := chromedp.CallBrowser(b.ctx, cdpbrowser.SetDownloadBehavior, cdpbrowser.SetDownloadBehaviorParams{
		Behavior: cdpbrowser.SetDownloadBehaviorBehaviorAllowAndName, BrowserContextID: chromedp.FromContext(b.ctx).BrowserContextID,
		DownloadPath: dir, EventsEnabled: &events})
	require.NoError(t, err)
	progress := chromedp.BrowserEvents(b.ctx, cdpbrowser.DownloadProgress)
	b.do(t, chromedp.Click(chromedp.CSS(sel)))
	for ev, err := range progress {
		require.NoError(t, err, "waiting for the download")
		switch ev.State {
		case cdpbrowser.DownloadProgressStateCompleted:
			data, err := os.ReadFile(filepath.Join(dir, ev.GUID))
			require.NoError(t, err)
			return data
		case cdpbrowser.DownloadProgressStateCanceled:
			t.Fatal("the download was canceled")
		}
	}
	t.Fatal("no download")
	return nil
}

var hashPattern = regexp.MustCompile(`^[0-9a-f]{64}$`)

// TestBrowserExpert: an expert signs in through the link "/experts web"
// answered, sees the list, filters it, searches, opens a case, reads its
// thread (internal notes included) and its timeline with each entry's hash
// and the chain intact, downloads its sample, reads the report with its
// charts, signs out; the used link is refused.
func TestBrowserExpert(t *testing.T) {
	t.Parallel()
	f := setupTracker(t, nil)
	f.seed(t)
	b := newTab(t)
	link := f.web(t, bot.Slack, expertID, deskChannel)

	require.Equal(t, 200, b.open(t, link))
	require.Equal(t, "Sign in to threatdesk's case tracker as Eve Expert (the expert desk)?", b.text(t, "main h1"))
	require.Equal(t, link, b.location(t), "opening the link only asks")
	b.shot(t, "signin", false)
	require.Equal(t, 200, b.click(t, "#signin"))
	require.Equal(t, f.base+web.TrackerPath, b.location(t), "Sign in lands on the case list")
	require.Contains(t, b.text(t, ".who"), "Eve Expert · expert · every org")
	refs := b.texts(t, "#cases a.ref")
	require.Len(t, refs, 5)
	require.Contains(t, refs, f.showcase)
	require.Contains(t, refs, f.fabCase)
	require.Contains(t, b.texts(t, "#cases td"), "Fabrikam")
	b.shot(t, "cases", false)

	// Filter: every status, high priority.
	b.do(t, chromedp.SetValue(chromedp.CSS("#f-status"), "all"), chromedp.SetValue(chromedp.CSS("#f-priority"), "high"))
	require.Equal(t, 200, b.click(t, "#f-apply"))
	require.Contains(t, b.location(t), "priority=high")
	prios := b.texts(t, "#cases .prio")
	require.NotEmpty(t, prios)
	for _, p := range prios {
		require.Equal(t, "high", p)
	}
	require.Contains(t, b.texts(t, "#cases a.ref"), f.showcase)
	// And one org.
	b.do(t, chromedp.SetValue(chromedp.CSS("#f-org"), "fabrikam"), chromedp.SetValue(chromedp.CSS("#f-priority"), ""))
	require.Equal(t, 200, b.click(t, "#f-apply"))
	for _, row := range b.texts(t, "#cases tbody tr td:nth-child(2)") {
		require.Equal(t, "Fabrikam", row)
	}
	require.Contains(t, b.texts(t, "#cases a.ref"), f.fabCase)
	b.shot(t, "cases-filtered", false)

	// Search, as "/experts cases search".
	b.do(t, chromedp.SetValue(chromedp.CSS("#q"), "beacon"))
	require.Equal(t, 200, b.click(t, "#q-go"))
	require.Equal(t, []string{f.showcase}, b.texts(t, "#cases a.ref"))
	require.False(t, strings.Contains(b.location(t), "beacon"), "the search text is not in the URL")
	b.shot(t, "search", false)

	// The case.
	require.Equal(t, 200, b.click(t, "#cases a.ref"))
	require.Equal(t, f.base+"/web/cases/"+f.showcase, b.location(t))
	require.Equal(t, "Is this DLL the Cobalt Strike beacon from last week? A scheduled task dropped it on ws-017.", b.text(t, "#question"))
	require.Equal(t, "In progress", b.text(t, "#status"))
	clocks := b.texts(t, "#clocks .clock")
	require.Len(t, clocks, 2)
	require.Contains(t, clocks[0], "First response")
	require.Contains(t, clocks[0], "Met")
	require.Contains(t, clocks[1], "Conclusion")
	heads := b.texts(t, "#thread .msghead")
	msgs := b.texts(t, "#thread .msgtext")
	require.Len(t, msgs, 4)
	require.Contains(t, heads[0], "Eve Expert · Threat expert")
	require.Contains(t, heads[1], "Ana Lyst · Requester side · Contoso")
	require.Contains(t, heads[2], "Internal note · experts only")
	require.Equal(t, "Its C2 is 203.0.113.7, which we saw at another customer last month.", msgs[2])
	rec, err := f.svc.Export(context.Background(), casework.AllOrgs(), f.showcase, true)
	require.NoError(t, err)
	require.Contains(t, b.text(t, "#chain"), "Chain intact")
	hashes := b.texts(t, "#timeline td.hash")
	require.Len(t, hashes, len(rec.Timeline))
	for i, h := range hashes {
		require.Regexp(t, hashPattern, h)
		require.Equal(t, rec.Timeline[i].Hash, h)
	}
	for _, m := range b.texts(t, "#timeline td.mark") {
		require.Equal(t, "✓", m)
	}
	b.shot(t, "case", true)

	// Download the sample: a ZIP with the password "infected", recorded.
	zip := b.download(t, "button.download")
	name, plain := unzipAES(t, zip, web.SamplePassword)
	require.Equal(t, "beacon.dll", name)
	require.Equal(t, f.sample, plain)
	require.Equal(t, 200, b.open(t, f.base+"/web/cases/"+f.showcase))
	whats := b.texts(t, "#timeline tbody tr td:nth-child(3)")
	require.Equal(t, "Sample beacon.dll downloaded by Eve Expert", whats[len(whats)-1])
	require.Contains(t, b.text(t, "#chain"), "Chain intact")

	// The report.
	require.Equal(t, 200, b.click(t, `nav.top a[href="/web/report"]`))
	require.Equal(t, "Q1 2026 · all orgs", b.text(t, "#report-title"))
	require.Equal(t, "20", b.text(t, "#opened"))
	rep, err := f.svc.Report(context.Background(), casework.AllOrgs(), casework.ReportRequest{})
	require.NoError(t, err)
	require.Equal(t, 4, eval[int](t, b, `document.querySelectorAll("svg.chart").length`))
	require.Equal(t, len(rep.Total.Opened.ByWeek), eval[int](t, b, `document.querySelectorAll("#chart-weekly rect").length`))
	require.Equal(t, 2, eval[int](t, b, `document.querySelectorAll("#chart-credits rect.bar").length`), "one bar of credits used per org")
	require.Contains(t, b.texts(t, "#chart-first text"), "high 1h", "the first-response target is drawn")
	b.shot(t, "report", true)
	b.do(t, chromedp.SetValue(chromedp.CSS("#r-period"), "month"), chromedp.SetValue(chromedp.CSS("#r-org"), "contoso"))
	require.Equal(t, 200, b.click(t, "#r-apply"))
	require.Equal(t, "March 2026 · Contoso", b.text(t, "#report-title"))

	// Sign out; the session is over, and the used link opens nothing.
	require.Equal(t, 200, b.click(t, "#signout"))
	require.Equal(t, "Signed out", b.text(t, "main h1"))
	require.Equal(t, 401, b.open(t, f.base+web.TrackerPath))
	require.Equal(t, 410, b.open(t, link))
	require.Equal(t, "This sign-in link was already used", b.text(t, "main h1"))
	b.shot(t, "link-used", false)
}

// TestBrowserMemberOfAnotherOrg: a Fabrikam analyst (Discord) sees
// Fabrikam's cases only; Contoso's case is "Not found" (404), exactly as a
// case that does not exist; on their own case there are no internal notes
// and no downloads.
func TestBrowserMemberOfAnotherOrg(t *testing.T) {
	t.Parallel()
	f := setupTracker(t, nil)
	f.seed(t)
	b := newTab(t)
	b.signIn(t, f.web(t, bot.Discord, fabAnalyst, fabSOC), "Fab Analyst (Fabrikam)")
	require.Equal(t, "Fab Analyst · member · Fabrikam", b.text(t, ".who"))
	refs := b.texts(t, "#cases a.ref")
	require.Contains(t, refs, f.fabCase)
	require.NotContains(t, refs, f.showcase)
	require.Zero(t, eval[int](t, b, `document.querySelectorAll("#f-org").length`), "no org to choose")
	b.shot(t, "member-cases", false)

	require.Equal(t, 404, b.open(t, f.base+"/web/cases/"+f.showcase))
	foreign := b.text(t, "main")
	b.shot(t, "member-foreign-case", false)
	require.Equal(t, 404, b.open(t, f.base+"/web/cases/EOD-99999"))
	require.Equal(t, foreign, b.text(t, "main"))
	require.Contains(t, foreign, "Not found")

	require.Equal(t, 200, b.open(t, f.base+"/web/cases/"+f.fabCase))
	require.Zero(t, eval[int](t, b, `document.querySelectorAll("button.download, .msg-internal").length`))
	require.Equal(t, 200, b.open(t, f.base+"/web/report"))
	require.Equal(t, "Q1 2026 · Fabrikam", b.text(t, "#report-title"))
	require.Equal(t, "8", b.text(t, "#opened"))
	require.Equal(t, []string{"Fabrikam"}, b.texts(t, "#figures tbody td:first-child"))
}

// TestBrowserHostileText: a question and a reply made of markup show as
// the text they are, and none of it runs.
func TestBrowserHostileText(t *testing.T) {
	t.Parallel()
	f := setupTracker(t, nil)
	f.seed(t)
	b := newTab(t)
	b.signIn(t, f.web(t, bot.Slack, expertID, deskChannel), "Eve Expert (the expert desk)")
	require.Equal(t, 200, b.open(t, f.base+"/web/cases/"+f.hostile))
	require.Equal(t, f.hostileQuestion, b.text(t, "#question"))
	require.Equal(t, []string{`</div><script>window.__pwned = 3</script>`}, b.texts(t, "#thread .msgtext"))
	require.Contains(t, b.text(t, ".facts"), `Alert <i onmouseover="alert(1)">alert</i>`)
	require.True(t, eval[bool](t, b, `window.__pwned === undefined`), "no script of the question ran")
	require.Zero(t, eval[int](t, b, `document.querySelectorAll("main script, main img, main i, main [onerror], main [onmouseover]").length`))
	require.Zero(t, eval[int](t, b, `document.querySelectorAll('a[href^="javascript"]').length`))
	b.shot(t, "hostile", false)
	// In the list too.
	require.Equal(t, 200, b.open(t, f.base+web.TrackerPath))
	require.Contains(t, b.texts(t, "#cases td.subject"), `Alert <i onmouseover="alert(1)">alert</i>`)
	require.True(t, eval[bool](t, b, `window.__pwned === undefined`))
}

// TestBrowserLoginCSRF: a sign-in link's owner puts their link in a page
// of another site, as an image and as a form with the token of the page
// they loaded themselves. The victim's browser loading the image is not
// signed in; pressing the form's button is refused (Chromium sends the
// other site's Origin) and uses nothing up; the victim is not signed in as
// the attacker. The link then still works from its own page.
func TestBrowserLoginCSRF(t *testing.T) {
	t.Parallel()
	f := setupTracker(t, nil)
	b := newTab(t)
	link := f.web(t, bot.Slack, analyst, contosoSOC)
	resp, page := fetch(t, client(t), http.MethodGet, link, nil) // the attacker's own GET
	require.Equal(t, http.StatusOK, resp.StatusCode)
	evil := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		_, _ = fmt.Fprintf(w, `<!doctype html><title>Cute cats</title><img src="%s" alt="">
<form method="post" action="%s"><input type="hidden" name="csrf" value="%s"><button id="go">See the cats</button></form>`,
			html.EscapeString(link), html.EscapeString(link), html.EscapeString(csrfOf(t, page)))
	}))
	t.Cleanup(evil.Close)
	require.NotEqual(t, f.base, evil.URL)

	require.Equal(t, 200, b.open(t, evil.URL))
	require.False(t, f.linkUsed(t, link), "the image's GET uses nothing up")
	require.Equal(t, 401, b.open(t, f.base+web.TrackerPath), "and signs nobody in")
	require.Equal(t, 200, b.open(t, evil.URL))
	require.Equal(t, 403, b.click(t, "#go"))
	require.Equal(t, "This sign-in did not come from threatdesk's page", b.text(t, "main h1"))
	b.shot(t, "signin-cross-site", false)
	require.False(t, f.linkUsed(t, link), "the refused POST uses nothing up")
	require.Equal(t, 401, b.open(t, f.base+web.TrackerPath))

	b.signIn(t, link, "Ana Lyst (Contoso)")
	require.Equal(t, "Ana Lyst · member · Contoso", b.text(t, ".who"))
	require.True(t, f.linkUsed(t, link))
}
