package backtest

import (
	"bytes"
	"context"
	"fmt"
	"image/png"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"testing"
	"time"

	"github.com/triggerd/triggerd/schemas"
)

// sampleOutcomes are two sides over five days: the candidate sends fewer
// emails (a cap) and more pushes, so every part of the report has content.
func sampleOutcomes(from time.Time) (base, cand Outcome) {
	for d := 0; d < 5; d++ {
		for i := 0; i < 10+d*3; i++ {
			due := from.Add(time.Duration(d)*24*time.Hour + time.Duration(i)*time.Hour)
			cust := schemas.CustomerID(fmt.Sprintf("c-%d-%d", d, i))
			t := schemas.Trigger{ID: fmt.Sprintf("%s-cart", cust), Rule: "cart_abandoned", RuleVersion: 1, Stage: 1, Channel: "email",
				Customer: cust, DueAt: due, CausedBy: []string{string(cust) + "-e"}}
			base.Triggers = append(base.Triggers, t)
			if i%4 == 0 {
				cand.Suppressions = append(cand.Suppressions, schemas.Suppression{Trigger: t, Action: schemas.ActionSuppressed,
					Reason: "cap", Policy: "email_7d", DecidedAt: due})
			} else {
				cand.Triggers = append(cand.Triggers, t)
			}
			if i%3 == 0 {
				p := t
				p.ID, p.Rule, p.Channel, p.CausedBy = t.ID+"-push", "winback", "push", []string{string(cust) + "-w"}
				cand.Triggers = append(cand.Triggers, p)
			}
		}
	}
	base.Cost = Cost{Events: 1000, WallSeconds: 0.5, CPUSeconds: 0.6, EventsPerSecond: 2000}
	cand.Cost = base.Cost
	return base, cand
}

// TestHTMLReportInChromium loads the HTML report in a real headless
// Chromium (Debian's package): the page runs without script errors, every
// chart has a non-empty drawing, and the screenshot is not blank. The
// screenshot stays in the test's artifact directory (go test -artifacts).
// Without Chromium the test fails in CI (CI=true) and is skipped elsewhere.
func TestHTMLReportInChromium(t *testing.T) {
	browser, err := exec.LookPath("chromium")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("chromium not found on PATH: install Debian's chromium package (.ci/run does)")
		}
		t.Skip("chromium not found on PATH (apt-get install -y chromium)")
	}
	from := time.Date(2026, 3, 2, 0, 0, 0, 0, time.UTC)
	base, cand := sampleOutcomes(from)
	rep := Compare(from, from.Add(5*24*time.Hour), base, cand)
	rep.Baseline.Rules, rep.Candidate.Rules = "current.yaml", "candidate.yaml"
	dir := t.ArtifactDir()
	page := filepath.Join(dir, "report.html")
	var buf bytes.Buffer
	if err := rep.WriteHTML(&buf); err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(buf.Bytes(), []byte("http://")) || bytes.Contains(buf.Bytes(), []byte("https://")) {
		t.Error("the report refers to the network; it must be self-contained")
	}
	if err := os.WriteFile(page, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	flags := []string{"--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
		"--user-data-dir=" + filepath.Join(dir, "profile"), "--virtual-time-budget=5000"}
	dom, err := exec.CommandContext(ctx, browser, append(flags, "--dump-dom", "file://"+page)...).Output()
	if err != nil {
		t.Fatalf("chromium --dump-dom: %v", err)
	}
	body := regexp.MustCompile(`<body[^>]*>`).Find(dom)
	attr := func(name string) (string, bool) {
		m := regexp.MustCompile(name + `="([^"]*)"`).FindSubmatch(body)
		if m == nil {
			return "", false
		}
		return string(m[1]), true
	}
	if errs, ok := attr("data-errors"); ok {
		t.Errorf("script errors in the page: %s", errs)
	}
	charts, _ := attr("data-charts")
	rendered, ok := attr("data-charts-rendered")
	n, _ := strconv.Atoi(charts)
	// One chart per rule (cart_abandoned, winback) and the suppressions.
	if !ok || rendered != charts || n != len(rep.Rules)+1 {
		t.Errorf("charts: %s of %s rendered, want all %d (body %s)", rendered, charts, len(rep.Rules)+1, body)
	}

	shot := filepath.Join(dir, "report.png")
	cmd := exec.CommandContext(ctx, browser, append(flags, "--window-size=800,2400", "--screenshot="+shot, "file://"+page)...)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("chromium --screenshot: %v\n%s", err, out)
	}
	f, err := os.Open(shot)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	img, err := png.Decode(f)
	if err != nil {
		t.Fatalf("screenshot: %v", err)
	}
	// The candidate's blue bars are on the page.
	blue := 0
	for y := img.Bounds().Min.Y; y < img.Bounds().Max.Y; y += 2 {
		for x := img.Bounds().Min.X; x < img.Bounds().Max.X; x += 2 {
			r, g, b, _ := img.At(x, y).RGBA()
			if r>>8 < 0x40 && g>>8 > 0x50 && g>>8 < 0x80 && b>>8 > 0xd0 {
				blue++
			}
		}
	}
	if blue < 200 {
		t.Errorf("the screenshot shows %d pixels of the candidate's bars; the charts did not draw", blue)
	}
	t.Logf("report %s, screenshot %s (%d candidate-bar pixels sampled)", page, shot, blue)
}
