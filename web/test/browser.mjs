// Drives headless Chromium (Debian's package, through playwright-core) through the demo portal:
// clicks "Sign with my phone", reports the QR text that kalit.js shows, waits for the result.
// Protocol on standard output, one line each: "QR <text>", "SAS <code>", "DOC <json string>",
// "RESULT <json>". Exit status 0 only if the page got a signature that the agent verified.
// With STATUS_ONLY=1 it only prints "STATUS <code>": what kalit.status() reported on that page.
//
// With EXPECT_ERROR=1 it shows no QR (the page is expected to refuse) and reports the result as it is.
// With SCREENSHOT=FILE.png it saves the page as the person sees it once the result is in.
// With FILE=PATH it signs that file with the page's file picker (CMS, or with FORMAT=pades a PDF inside
// the PDF) instead of the text.
//
//   PORTAL_URL=http://127.0.0.1:PORT/ [CHROMIUM=/usr/bin/chromium] [FORMAT=cms|raw|pades] node browser.mjs

import { chromium } from "playwright-core";

const url = process.env.PORTAL_URL;
const format = process.env.FORMAT || "cms";
if (!url) { console.error("PORTAL_URL is not set"); process.exit(2); }
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"],
});
let ok = false;
try {
  const page = await browser.newPage();
  page.on("console", (m) => console.error("[page]", m.type(), m.text()));
  page.on("pageerror", (e) => console.error("[page error]", e.message));
  await page.goto(url);
  if (process.env.STATUS_ONLY) {
    // Only report what kalit.status() said (for origins the agent must refuse).
    const el = await page.waitForSelector("#status:not([data-status=idle])", { timeout: 15000 });
    console.log("STATUS " + (await el.getAttribute("data-status")));
    ok = true;
    throw new Error("done");
  }
  await page.waitForSelector("#status[data-status=ready]", { timeout: 15000 });
  if (process.env.FILE) {
    if (process.env.FORMAT) await page.check(`input[name=format][value=${format}]`);
    await page.setInputFiles("#file", process.env.FILE);
    await page.click("#sign-file");
  } else {
    await page.check(`input[name=format][value=${format}]`);
    console.log("DOC " + JSON.stringify(await page.inputValue("#doc")));
    await page.click("#sign");
  }
  if (!process.env.EXPECT_ERROR) {
    const qr = await page.waitForSelector("[data-kalit-qr]", { timeout: 15000 });
    console.log("QR " + (await qr.textContent()).trim());
    // The dialog as the person sees it, with the QR drawn (kalit.js draws it itself in direct mode).
    if (process.env.SCREENSHOT) {
      await page.waitForFunction(() => document.querySelector("[data-kalit-qr-image]")?.complete);
      await page.screenshot({ path: process.env.SCREENSHOT.replace(/\.png$/, "-qr.png") });
    }
  }
  await page.waitForSelector("#result:not([data-result='']):not([data-result=pending])", { timeout: 180000 });
  console.log("SAS " + (await page.getAttribute("#sas", "data-sas")));
  if (process.env.SCREENSHOT) await page.screenshot({ path: process.env.SCREENSHOT, fullPage: true });
  const result = await page.$eval("#result", (e) => ({ ...e.dataset, text: e.textContent }));
  console.log("RESULT " + JSON.stringify(result));
  ok = process.env.EXPECT_ERROR ? result.result.startsWith("error:") : result.result === "valid";
} catch (e) {
  if (e.message !== "done") console.error("browser test failed:", e.message);
} finally {
  await browser.close();
}
process.exit(ok ? 0 : 1);
