// The dashboard walk of scripts/ci-browser.sh: a newcomer signs in, filters jobs, opens one, follows
// its log, cancels a job that cannot start, and looks at the costs; no console errors anywhere, the
// page fits a 390 px phone, and screenshots at 1440 and 390 px go to $ARTIFACTS.
"use strict";
const { chromium } = require("playwright-core");

const url = process.env.CUMULO_URL;
const token = process.env.CUMULO_TOKEN;
const out = process.env.ARTIFACTS;
const problems = [];

function check(ok, what) {
  if (!ok) { problems.push(what); console.error("FAIL: " + what); } else { console.log("ok: " + what); }
}

async function watchConsole(page, label) {
  page.on("console", (m) => { if (m.type() === "error") problems.push(`${label}: console error: ${m.text()}`); });
  page.on("pageerror", (e) => problems.push(`${label}: page error: ${e.message}`));
  page.on("response", (r) => { if (r.status() >= 400) console.error(`${label}: ${r.status()} from ${r.url().replace(/token=[^&]*/, "token=…")}`); });
}

async function signIn(page) {
  await page.goto(url + "/");
  await page.waitForSelector("#login:not([hidden])");
  await page.fill("#token-input", token);
  await page.click("#login-form button");
  await page.waitForSelector("#cards .card");
}

async function fitsWidth(page, width, label) {
  const w = await page.evaluate(() => document.documentElement.scrollWidth);
  check(w <= width, `${label}: the page is ${w} px wide at a ${width} px viewport`);
}

(async () => {
  const browser = await chromium.launch({
    executablePath: "/usr/bin/chromium",
    args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"],
  });
  try {
    // ---- desktop -------------------------------------------------------------------------------
    const page = await browser.newPage({ viewport: { width: 1440, height: 1000 } });
    await watchConsole(page, "1440");
    await signIn(page);
    await page.waitForFunction(() => document.querySelector("#status").textContent === "connected");
    check((await page.textContent("#who")).includes("admin"), "signed in with the admin token");
    await page.waitForSelector("#queue-chart svg", { timeout: 20000 });
    check(await page.isVisible("#sim-banner"), "the simulated clusters are named in a banner");
    await page.selectOption("#range", "15m");
    await page.waitForTimeout(1500);
    await page.screenshot({ path: `${out}/dashboard-overview-1440.png`, fullPage: true });

    // Jobs: filter by state, then search by name.
    await page.click('#nav a[data-view="jobs"]');
    await page.waitForSelector("#jobs tbody tr td a");
    await page.selectOption("#f-state", "pending");
    await page.waitForFunction(() => location.hash.includes("state=pending"));
    await page.waitForFunction(() => [...document.querySelectorAll("#jobs tbody tr")].every((tr) => tr.textContent.includes("pending") || tr.textContent.includes("no jobs match")));
    const pendingRows = await page.$$eval("#jobs tbody tr", (rows) => rows.map((r) => r.textContent));
    check(pendingRows.length > 0 && pendingRows.every((t) => t.includes("pending")), `state filter shows only pending jobs (${pendingRows.length} rows)`);
    await page.click("#f-clear");
    await page.fill("#f-q", "tick");
    await page.waitForFunction(() => location.hash.includes("q=tick"));
    await page.waitForFunction(() => { const rows = document.querySelectorAll("#jobs tbody tr"); return rows.length === 1 && rows[0].textContent.includes("ticker"); });
    check(true, "search by name finds the ticker job");
    await page.screenshot({ path: `${out}/dashboard-jobs-1440.png`, fullPage: true });

    // A job page by clicking its row: its own URL, attempts, events and the live log.
    await page.click("#jobs tbody tr");
    await page.waitForFunction(() => /^#\/jobs\/\d+$/.test(location.hash));
    const jobUrl = page.url();
    await page.waitForSelector("#job-attempts tbody tr td .pill");
    await page.waitForFunction(() => document.querySelector("#job-log").textContent.includes("tick 3"), null, { timeout: 30000 });
    check(true, "the job page follows the log while the job runs");
    await page.waitForFunction(() => document.querySelector("#job-log").textContent.includes("tick 8"), null, { timeout: 30000 });
    const events = await page.textContent("#job-events");
    check(/\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}/.test(events), "event times carry the date");
    await page.waitForFunction(() => document.querySelector("#job-events").textContent.includes("exit code 0"), null, { timeout: 20000 });
    check(true, "events show the exit code");
    await page.screenshot({ path: `${out}/dashboard-job-1440.png`, fullPage: true });
    // The URL alone opens it again (a reload keeps the page).
    await page.goto(jobUrl);
    await page.waitForSelector("#job-attempts tbody tr td .pill");
    check((await page.textContent("#job-title")).includes("ticker"), "the job page's URL opens the same job");

    // Cancel a job that cannot start, as an admin.
    await page.goto(url + "/#/jobs?q=waits-forever");
    await page.waitForSelector("#jobs tbody tr td a");
    await page.click("#jobs tbody tr");
    await page.waitForSelector("#cancel");
    await page.click("#cancel");
    await page.click("#cancel");
    await page.waitForFunction(() => document.querySelector("#job-title").textContent.includes("cancelled"), null, { timeout: 15000 });
    check(true, "the cancel button cancels a pending job");

    // Costs and fleet.
    await page.click('#nav a[data-view="costs"]');
    await page.waitForSelector("#contracts tbody tr");
    await page.waitForSelector("#burn-charts .chart");
    await page.screenshot({ path: `${out}/dashboard-costs-1440.png`, fullPage: true });
    await page.click('#nav a[data-view="fleet"]');
    await page.waitForSelector("#clusters tbody tr td b");
    await page.screenshot({ path: `${out}/dashboard-fleet-1440.png`, fullPage: true });

    // A reload keeps the charts: the history comes from the server.
    await page.goto(url + "/#/");
    await page.waitForSelector("#queue-chart svg polyline", { state: "attached", timeout: 20000 });
    check(true, "after a reload the queue chart is drawn from the server's history");
    await page.close();

    // ---- phone ---------------------------------------------------------------------------------
    const phone = await browser.newPage({ viewport: { width: 390, height: 844 }, deviceScaleFactor: 2, isMobile: true, hasTouch: true });
    await watchConsole(phone, "390");
    await signIn(phone);
    await phone.waitForSelector("#queue-chart svg");
    await fitsWidth(phone, 390, "overview");
    await phone.screenshot({ path: `${out}/dashboard-overview-390.png`, fullPage: true });
    await phone.goto(url + "/#/jobs");
    await phone.waitForSelector("#jobs tbody tr td a");
    await fitsWidth(phone, 390, "jobs");
    await phone.screenshot({ path: `${out}/dashboard-jobs-390.png`, fullPage: true });
    await phone.goto(jobUrl);
    await phone.waitForSelector("#job-attempts tbody tr td .pill");
    await phone.waitForFunction(() => document.querySelector("#job-log").textContent.includes("tick 8"), null, { timeout: 30000 });
    await fitsWidth(phone, 390, "job page");
    await phone.screenshot({ path: `${out}/dashboard-job-390.png`, fullPage: true });
    await phone.goto(url + "/#/costs");
    await phone.waitForSelector("#contracts tbody tr");
    await fitsWidth(phone, 390, "costs");
    await phone.screenshot({ path: `${out}/dashboard-costs-390.png`, fullPage: true });
    await phone.close();
  } finally {
    await browser.close();
  }
  check(problems.filter((p) => p.includes("console error") || p.includes("page error")).length === 0, "no console errors");
  if (problems.length) {
    console.error("dashboard problems:\n  " + problems.join("\n  "));
    process.exit(1);
  }
})().catch((e) => { console.error(e); process.exit(1); });
