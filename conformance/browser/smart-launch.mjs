// Drives the SMART JavaScript client (fhirclient) through a standalone
// launch against Kiln in headless Debian Chromium, as a person would:
// the app's launch page, Kiln's login page, its consent page, back to the
// app, which reads the patient. Run by cmd/kiln/browser_test.go, which
// starts Kiln and serves launch.html and index.html; this script prints
// one JSON object on stdout for the Go test to check.
//
// Environment: KILN_LAUNCH_URL (launch.html?iss=…&client_id=…),
// KILN_USERNAME, KILN_PASSWORD, KILN_SCREENSHOT (optional: a PNG of the
// consent page), CHROMIUM (default /usr/bin/chromium).
//
// The login and consent pages are used with the keyboard only (Tab,
// typing, Enter), and each is audited: labels, accessible names, focus
// ring, WCAG 2.1 AA text contrast (1.4.3), language and title.

import { chromium } from "playwright-core";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

const env = (k, d) => process.env[k] ?? d;
const launchURL = env("KILN_LAUNCH_URL");
const out = { keyboard: [], console: [] };
const profile = mkdtempSync(join(tmpdir(), "kiln-chromium-"));
let context;

// audit runs in the page: what a screen-reader or keyboard user, or one
// with low vision, could not use.
function audit() {
  const problems = [];
  const name = el => (el.getAttribute("aria-label") || "").trim() ||
    [...(el.labels || [])].map(l => l.textContent.trim()).join(" ") ||
    (el.tagName === "BUTTON" ? el.textContent.trim() : "");
  if (!document.documentElement.lang) problems.push("html has no lang");
  if (!document.title.trim()) problems.push("no title");
  if (document.querySelectorAll("h1").length !== 1) problems.push("want exactly one h1");
  for (const el of document.querySelectorAll("input:not([type=hidden]), select, textarea, button")) {
    const what = `${el.tagName.toLowerCase()}[name=${el.name}] "${(el.textContent || el.value || "").trim().slice(0, 20)}"`;
    if (!name(el)) problems.push(`${what} has no label or accessible name`);
    if (el.tabIndex < 0) problems.push(`${what} is not in the tab order`);
    el.focus();
    const cs = getComputedStyle(el);
    if ((cs.outlineStyle === "none" || parseFloat(cs.outlineWidth) === 0) && cs.boxShadow === "none") {
      problems.push(`${what} shows no focus indicator`);
    }
    el.blur();
  }
  // Contrast of every element with text of its own, against the first
  // opaque background up its ancestors (the canvas is white).
  const rgba = s => (s.match(/[\d.]+/g) || []).map(Number);
  const lum = ([r, g, b]) => {
    const c = v => (v /= 255) <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4;
    return 0.2126 * c(r) + 0.7152 * c(g) + 0.0722 * c(b);
  };
  const background = el => {
    for (let e = el; e; e = e.parentElement) {
      const c = rgba(getComputedStyle(e).backgroundColor);
      if (c.length >= 3 && (c.length < 4 || c[3] > 0)) return c;
    }
    return [255, 255, 255];
  };
  for (const el of document.body.querySelectorAll("*")) {
    const own = [...el.childNodes].some(n => n.nodeType === Node.TEXT_NODE && n.textContent.trim());
    if (!own || el.closest("script,style")) continue;
    const cs = getComputedStyle(el);
    if (cs.visibility === "hidden" || cs.display === "none") continue;
    const l1 = lum(rgba(cs.color)), l2 = lum(background(el));
    const ratio = (Math.max(l1, l2) + 0.05) / (Math.min(l1, l2) + 0.05);
    const size = parseFloat(cs.fontSize), bold = parseInt(cs.fontWeight, 10) >= 700;
    const need = size >= 24 || (bold && size >= 18.66) ? 3 : 4.5;
    if (ratio < need) {
      problems.push(`contrast ${ratio.toFixed(2)} < ${need} for <${el.tagName.toLowerCase()}> "${el.textContent.trim().slice(0, 30)}"`);
    }
  }
  return problems;
}

// tabTo presses Tab until the focused element matches test (at most 40
// times) and returns the names of the elements it passed.
async function tabTo(page, what, test) {
  const passed = [];
  for (let i = 0; i < 40; i++) {
    await page.keyboard.press("Tab");
    const f = await page.evaluate(() => {
      const a = document.activeElement;
      return a ? { tag: a.tagName.toLowerCase(), name: a.name || "", value: a.value || "", type: a.type || "" } : null;
    });
    if (f) passed.push(f);
    if (f && test(f)) return passed;
  }
  out.keyboard.push(`Tab never reached ${what}`);
  return null;
}

try {
  context = await chromium.launchPersistentContext(profile, {
    executablePath: env("CHROMIUM", "/usr/bin/chromium"),
    headless: true,
    args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
      "--disable-background-networking", "--disable-component-update", "--disable-sync"],
  });
  const page = context.pages()[0] || await context.newPage();
  page.setDefaultTimeout(60_000);
  page.on("console", m => { if (m.type() === "error") out.console.push(m.text()); });
  page.on("pageerror", e => out.console.push(String(e)));

  await page.goto(launchURL);
  // fhirclient reads the SMART configuration and redirects to Kiln.
  await page.waitForSelector("input[name=password]");
  out.loginURL = page.url().split("?")[0];
  out.loginAudit = await page.evaluate(audit);
  await page.evaluate(() => document.activeElement && document.activeElement.blur());
  if (await tabTo(page, "the username field", f => f.name === "username")) {
    await page.keyboard.type(env("KILN_USERNAME"));
    await page.keyboard.press("Tab");
    const f = await page.evaluate(() => document.activeElement.name);
    if (f !== "password") out.keyboard.push(`Tab from username went to ${f}, not password`);
    await page.keyboard.type(env("KILN_PASSWORD"));
    await page.keyboard.press("Enter");
  }

  await page.waitForSelector("button[name=approve]");
  out.consentAudit = await page.evaluate(audit);
  out.consentScopes = await page.$$eval("input[name=scope]", els => els.map(e => e.value));
  if (process.env.KILN_SCREENSHOT) await page.screenshot({ path: process.env.KILN_SCREENSHOT, fullPage: true });
  const passed = await tabTo(page, "the approve button", f => f.name === "approve");
  if (passed) {
    const reached = passed.filter(f => f.name === "scope").map(f => f.value);
    for (const s of out.consentScopes) {
      if (!reached.includes(s)) out.keyboard.push(`Tab skipped the checkbox of ${s}`);
    }
    await page.keyboard.press("Enter");
  }

  // Back in the app: the code exchange and the Patient read.
  await page.waitForFunction(() => document.body && document.body.dataset.state);
  out.appURL = page.url().split("?")[0];
  out.state = await page.evaluate(() => document.body.dataset.state);
  out.name = await page.textContent("#name");
  out.id = await page.textContent("#id");
  out.error = await page.textContent("#error");
} catch (err) {
  out.error = String(err && err.stack || err);
} finally {
  if (context) await context.close();
  rmSync(profile, { recursive: true, force: true });
}
process.stdout.write(JSON.stringify(out) + "\n");
