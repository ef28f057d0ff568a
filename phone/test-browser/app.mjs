// Drives the phone app (served by a relay at APP_URL) in Debian's Chromium as a phone (Pixel 7
// emulation), for crates/kalit-cli/tests/e2e/phone_app.rs. Commands on standard input, one per line;
// results on standard output. Screenshots of every screen go to SHOTS (not committed).
//
//   env: APP_URL, RA_URL, CODE, LOGIN, SHOTS (a directory, or "none" for no screenshots), [CHROMIUM]
//   SETUP                 first run (PIN), a P-256 key, a certificate from the RA, registration at the relay
//   QR <text>             opens APP_URL#<text> as a link would, names the new computer, prints SAS <code>
//   QRAS <login> <text>   the same, choosing <login> when the phone has several at this relay
//   PROMPT                waits for a request, prints PROMPT <origin>|<name>|<preview>
//   APPROVE | DECLINE     answers it (APPROVE enters the PIN)
//   UNCHECKED             on a request signed by digest: prints UNCHECKED held|released|<warning> and ticks
//                         the separate confirmation
//   PDF                   on a PDF signature: waits until the pages are drawn, prints
//                         PDF <pages>|<title>|<field>|<canvases>|<inked pixels of page 1>|<first page text>
//   WRONGPIN              approves with a wrong PIN
//   ENDED                 waits until the session ended
//   OFFLINE               reloads the app with the network off; it must still open
//   UNREACHABLE <qr>      the network gone (the app opens from its cache), the QR's link opened, the new
//                         computer named: the relay cannot be reached; prints UNREACHABLE <the error shown>;
//                         the network back, the app on its keys screen
//   LANGS                 every language renders the keys screen and a key with no {placeholder} left
//   CHANGEPIN             changes the PIN (later PINs are the new one)
//   CERTEND               the first certified key's page 10 days before its certificate ends, then after
//   BACKUP <passphrase>   makes a backup in Settings and saves the download; prints BACKUP <path>
//   RESTORE <file> <passphrase>  in a fresh browser profile: first run, restore from the file, prints RESTORED
//   HOSTILE <qr>          a QR whose origin is markup: the app must show it as text (no element made)
//   LINKLATER <qr>        puts #<qr> in the address bar without its hashchange (as when the event is still
//                         queued behind the ending of the session on screen); HOSTILE with no <qr> then
//                         fires the hashchange
//   DEVICES               the key's devices at the relay: prints DEVICES <count> <this-phone marks>
//   REMOVESELF            removes this phone's device from the login (as for a lost phone); the
//                         registration disappears from the app; prints REMOVED <registrations left>
//   CAMERA <y4m>          relaunches Chromium on the same profile with <y4m> as its camera, scans the
//                         QR in the app (Sign, "Scan"), prints SAS <code>
//   IMPORTPFX <file> <password> <label> <login>  imports a PFX, registers its key under <login>;
//                         prints IMPORTED <subject>
//   EXPORTPFX <password>  exports the first key as a PFX; prints PFX <path>
//   ENROLLINK <link>      opens a registration office's enrolment link: a new key, the certificate
//                         installed; prints ENROLLED <subject>
//   NOCAMERA              Sign, "Scan" with no camera, then with one the person does not allow; prints
//                         NOCAMERA <refused message>|<missing message>
//   FULL                  the disk full (IndexedDB answers QuotaExceededError), a new key refused;
//                         prints FULL <message>|<keys before>|<keys after, space again>
//   LOCK                  ten wrong PINs (Settings, change PIN; the page's clock moved past each delay),
//                         then the right one; prints LOCK <messages>|<last message>|<keys still listed>
//   SAMEDEVICE <portal>   the portal (direct mode, or through the agent) in a tab of this phone: "Sign with my phone",
//                         "Sign with Kalit on this phone" opens the app in a new tab; the portal's tab is
//                         frozen meanwhile; the app approves and closes its tab; the portal wakes up, takes
//                         its session back and shows the result: prints DOC <json>, PROMPT ..., SAMEDEVICE <json>
//   QUIT
import { mkdirSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";

import { chromium, devices } from "playwright-core";

const env = (k) => {
  const v = process.env[k];
  if (!v) throw new Error(`${k} is not set`);
  return v;
};
const APP = env("APP_URL");
const SHOTS = env("SHOTS");
let PIN = "123456";
const pinsUsed = [PIN];
if (SHOTS !== "none") mkdirSync(SHOTS, { recursive: true });

const { defaultBrowserType: _, ...pixel } = devices["Pixel 7"];
const profile = join(tmpdir(), `kalit-app-${process.pid}`);
const consoleLines = [];
const foreign = new Set();
const appOrigin = new URL(APP).origin;
const raOrigin = new URL(env("RA_URL")).origin;
async function launch(extraArgs = [], camera = extraArgs.length > 0) {
  const c = await chromium.launchPersistentContext(profile, {
    ...pixel,
    executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
    headless: true,
    locale: "uz-UZ",
    permissions: camera ? ["camera"] : [],
    args: extraArgs,
  });
  const p = c.pages()[0] ?? (await c.newPage());
  p.on("console", (m) => consoleLines.push(m.text()));
  p.on("pageerror", (e) => console.log(`PAGEERROR ${e.message}`));
  // Nothing is fetched from any host but the relay (the app) and the RA.
  p.on("request", (r) => {
    const o = new URL(r.url()).origin;
    if (o !== appOrigin && o !== raOrigin && !r.url().startsWith("blob:") && !r.url().startsWith("data:")) foreign.add(r.url());
  });
  return [c, p];
}
let [ctx, page] = await launch();
let shot = 0;
const snap = async (name) => {
  if (SHOTS === "none") return; // benchmarks: no screenshot inside a timed step
  shot++;
  await page.screenshot({ path: join(SHOTS, `${String(shot).padStart(2, "0")}-${name}.png`), fullPage: true });
};
const say = (s) => console.log(s);
const pin = async (value) => {
  value = value ?? PIN;
  await page.locator("#pin").fill(value);
  await page.locator("#pin-ok").click();
};
const errorText = async () => ((await page.locator(".error").count()) ? await page.locator(".error").innerText() : "");

async function setup() {
  await page.goto(APP);
  await page.locator("#pin1").waitFor();
  await snap("first-run");
  await page.locator("#pin1").fill(PIN);
  await page.locator("#pin2").fill(PIN);
  await page.locator("#create-vault").click();
  await page.locator("#storage").waitFor({ timeout: 30000 });
  await snap("storage");
  await page.locator("#continue").click();
  await page.locator("#new-key").waitFor();
  await snap("keys-empty");
  // Installability, once the service worker controls the page.
  await page.evaluate(() => navigator.serviceWorker.ready);
  const cdp = await ctx.newCDPSession(page);
  const inst = await cdp.send("Page.getInstallabilityErrors");
  say(`INSTALLABILITY ${JSON.stringify(inst.installabilityErrors)}`);
  await page.locator("#new-key").click();
  await page.locator("#key-name").fill("work");
  await snap("new-key");
  await page.locator("#create-key").click();
  await pin();
  await page.locator("#cert-subject").waitFor({ timeout: 30000 });
  await snap("key-details");
  await page.locator("#enrol").click();
  await page.locator("#ra-url").fill(env("RA_URL"));
  await page.locator("#ra-code").fill(env("CODE"));
  await snap("enrol");
  await page.locator("#ask-cert").click();
  await pin();
  await page.locator("#root-fingerprint").waitFor({ timeout: 30000 }).catch(async () => {
    throw new Error(`enrolment: ${await errorText()}`);
  });
  say(`ROOT ${(await page.locator("#root-fingerprint").innerText()).replace(/\s+/g, "")}`);
  say(`SUBJECT ${await page.locator("#enrolled-subject").innerText()}`);
  await snap("enrolled");
  await page.locator("#install").click();
  await pin();
  await page.locator("#register").waitFor({ timeout: 30000 });
  await snap("key-with-certificate");
  await page.locator("#register").click();
  await page.locator("#login").fill(env("LOGIN"));
  await snap("register");
  await page.locator("#do-register").click();
  await pin();
  await page.locator("#registered").waitFor({ timeout: 30000 }).catch(async () => {
    throw new Error(`registration: ${await errorText()}`);
  });
  say(`REGISTERED ${await page.locator("#registered").innerText()}`);
  await snap("registered");
}

async function qr(text, login) {
  await page.goto(`${APP}#${encodeURIComponent(text)}`);
  const named = page.locator("#computer-name");
  // The connected screen's code, or the request's (a page in direct mode asks at once).
  const sas = page.locator("#sas, #prompt-sas").first();
  const choose = page.locator(".choose-login");
  await Promise.race([named.waitFor({ timeout: 30000 }), sas.waitFor({ timeout: 30000 }), choose.first().waitFor({ timeout: 30000 })]).catch(async () => {
    throw new Error(`pairing: ${await errorText()}`);
  });
  if (await choose.first().isVisible()) {
    await snap("choose-login");
    say(`CHOOSING ${(await choose.allInnerTexts()).join(",")}`);
    await choose.filter({ hasText: login }).click();
    await Promise.race([named.waitFor({ timeout: 30000 }), sas.waitFor({ timeout: 30000 })]);
  }
  if (await named.isVisible()) {
    say(`ASKING ${await page.locator("#asking-origin").innerText()}`);
    await snap("new-computer");
    await named.fill("test laptop");
    await page.locator("#name-ok").click();
  }
  await sas.waitFor({ timeout: 30000 }).catch(async () => {
    throw new Error(`pairing: ${await errorText()}`);
  });
  await snap("connected");
  say(`VOUCH ${await page.locator("#origin-vouch, #prompt-vouch").first().innerText()}`);
  say(`SAS ${await sas.innerText()}`);
}

async function prompt() {
  await page.locator("#prompt").waitFor({ timeout: 60000 });
  await snap("prompt");
  const preview = (await page.locator("#prompt-preview").count()) ? await page.locator("#prompt-preview").innerText() : "";
  say(`PROMPT ${await page.locator("#prompt-origin").innerText()}|${await page.locator("#prompt-name").innerText()}|${preview.replace(/\n/g, "\\n")}`);
}

async function pdf() {
  const box = page.locator("#prompt-pdf");
  await box.waitFor({ timeout: 30000 });
  // Drawn: the progress line is gone and page 1 is on its canvas (or the failure is shown).
  await page.waitForFunction(() => !document.querySelector("#prompt-pdf .progress"), null, { timeout: 60000 });
  await page.locator("#prompt-pdf details summary").click().catch(() => {});
  const facts = await page.evaluate(() => {
    const c = document.querySelector("#pdf-pages-drawn canvas");
    let inked = 0;
    if (c) {
      const d = c.getContext("2d").getImageData(0, 0, c.width, c.height).data;
      for (let i = 0; i < d.length; i += 4) if (d[i] < 128 && d[i + 1] < 128 && d[i + 2] < 128) inked++;
    }
    const text = (id) => document.getElementById(id)?.innerText ?? "";
    return [text("pdf-pages"), text("pdf-title"), text("pdf-field"), document.querySelectorAll("#pdf-pages-drawn canvas").length, inked,
      text("pdf-failed") || text("pdf-text")];
  });
  await snap("prompt-pdf");
  say(`PDF ${facts.join("|").replace(/\n/g, " ")}`);
}

async function sameDevice(portalUrl) {
  const portal = await ctx.newPage();
  portal.on("pageerror", (e) => console.log(`PAGEERROR portal ${e.message}`));
  portal.on("console", (m) => consoleLines.push(m.text()));
  await portal.goto(portalUrl);
  await portal.locator("#status[data-status=ready]").waitFor({ timeout: 15000 });
  say(`MODE ${await portal.locator("#status").getAttribute("data-mode")}`);
  say(`DOC ${JSON.stringify(await portal.inputValue("#doc"))}`);
  await portal.locator("#sign").click();
  const button = portal.locator("[data-kalit-same-device]");
  await button.waitFor({ timeout: 15000 });
  if (SHOTS !== "none") await portal.screenshot({ path: join(SHOTS, "same-device-portal.png") });
  const [appTab] = await Promise.all([ctx.waitForEvent("page"), button.click()]);
  const portalPage = page;
  page = appTab;
  // Through an agent the QR names a computer this phone may not know yet: it is named first.
  const named = page.locator("#computer-name");
  await Promise.race([named.waitFor({ timeout: 30000 }), page.locator("#prompt").waitFor({ timeout: 30000 })]);
  if (await named.isVisible()) {
    await named.fill("this phone's browser");
    await page.locator("#name-ok").click();
  }
  await prompt();
  // The browser freezes the portal's tab while the person is in the app. Headless Chromium does not
  // freeze a page it considers visible (every page is, headless), so the lifecycle's freeze event, which
  // a real freeze fires first, is dispatched here too: kalit.js closes its socket, as mobile browsers do.
  const cdp = await ctx.newCDPSession(portal);
  await cdp.send("Page.setWebLifecycleState", { state: "frozen" });
  await portal.evaluate(() => document.dispatchEvent(new Event("freeze")));
  await page.locator("#approve").click();
  await pin();
  // The app closes its own tab once the answer is on its way: back to the portal.
  await appTab.waitForEvent("close", { timeout: 30000 });
  page = portalPage;
  await cdp.send("Page.setWebLifecycleState", { state: "active" });
  await portal.bringToFront();
  await portal.evaluate(() => document.dispatchEvent(new Event("resume")));
  await portal.locator("#result:not([data-result='']):not([data-result=pending])").waitFor({ timeout: 30000 });
  if (SHOTS !== "none") await portal.screenshot({ path: join(SHOTS, "same-device-result.png"), fullPage: true });
  const result = await portal.$eval("#result", (e) => ({ ...e.dataset, text: e.textContent }));
  say(`SAMEDEVICE ${JSON.stringify(result)}`);
  await portal.close();
}

async function langs() {
  await page.goto(APP);
  await page.locator("#new-key").waitFor();
  for (const l of ["uz", "ru", "en"]) {
    await page.locator("header select").selectOption(l);
    await page.locator("nav button").first().click();
    await page.locator("ul.list button.link").first().click();
    await page.locator("#cert-subject").waitFor();
    const text = await page.locator("body").innerText();
    if (/\{\w+\}/.test(text)) throw new Error(`${l}: a placeholder was left: ${text}`);
    await snap(`key-${l}`);
    await page.locator("nav button").nth(2).click();
    await page.locator("main li").first().waitFor();
    // Formats said in words ("oddiy imzo"), never the wire's "raw" or "cms-digest".
    const history = await page.locator("main").innerText();
    if (/\u00b7 (raw|cms|pades)(-digest)? \u00b7/.test(history)) throw new Error(`${l}: a format left untranslated: ${history}`);
    await snap(`history-${l}`);
    // Every other screen, in this language, with no {placeholder} and no English left where it should not be.
    const screens = [
      ["new-key", async () => { await page.locator("nav button").first().click(); await page.locator("#new-key").click(); }],
      ["import-pfx", async () => { await page.locator("nav button").first().click(); await page.locator("#import-pfx").click(); }],
      ["sign", async () => { await page.locator("nav button").nth(1).click(); }],
      ["settings", async () => { await page.locator("#nav-settings").click(); }],
    ];
    for (const [name, open] of screens) {
      await open();
      const body = await page.locator("main").innerText();
      if (/\{\w+\}/.test(body)) throw new Error(`${l} ${name}: a placeholder was left: ${body}`);
      if (l !== "en" && /\b(Create|Import|Scan with|Backup passphrase|Change the PIN)\b/.test(body)) throw new Error(`${l} ${name}: English left: ${body}`);
      await snap(`${name}-${l}`);
    }
  }
  say("LANGS OK");
}

async function scanError() {
  await page.locator("#scan").click();
  await page.locator(".error").waitFor({ timeout: 30000 });
  return (await page.locator(".error strong").innerText()).trim();
}

// No camera in this browser; then a camera the person does not allow (Chromium's fake camera, with the
// permission prompt answered "no", as headless Chromium does).
async function noCamera() {
  await page.goto(APP);
  await page.locator("nav button").nth(1).click();
  const missing = await scanError();
  await snap("camera-missing");
  await ctx.close();
  [ctx, page] = await launch(["--use-fake-device-for-media-stream"], false);
  await page.goto(APP);
  await page.locator("nav button").nth(1).click();
  const refused = await scanError();
  await snap("camera-refused");
  say(`NOCAMERA ${refused}|${missing}`);
}

const keyCount = async () => {
  await page.goto(APP);
  await page.locator("#new-key").waitFor();
  return page.locator("ul.list button.link").count();
};

// A full phone. This Chromium ignores DevTools' quota override (Storage.overrideQuotaForOrigin), and
// filling the disk is no test to run on a shared machine, so the browser's answer to a full disk is
// injected where the browser gives it: IndexedDB's put throws QuotaExceededError while the flag is set.
async function storageFull() {
  await ctx.addInitScript(() => {
    const put = IDBObjectStore.prototype.put;
    IDBObjectStore.prototype.put = function (...args) {
      if (globalThis.__kalitDiskFull) throw new DOMException("the disk is full", "QuotaExceededError");
      return put.apply(this, args);
    };
  });
  const before = await keyCount();
  await page.locator("header select").selectOption("uz");
  await page.evaluate(() => (globalThis.__kalitDiskFull = true));
  await page.locator("#new-key").click();
  await page.locator("#key-name").fill("no room");
  await page.locator("#create-key").click();
  await pin();
  await page.locator(".error").waitFor({ timeout: 30000 });
  await snap("storage-full");
  const message = (await page.locator(".error strong").innerText()).trim();
  await page.evaluate(() => (globalThis.__kalitDiskFull = false));
  say(`FULL ${message}|${before}|${await keyCount()}`);
}

// Ten wrong PINs lock the vault; the right PIN is refused afterwards, and nothing is deleted. The
// page's clock is moved ten minutes on before each try, past the growing delays (up to 32 s here).
async function lockOut() {
  const start = Date.now();
  const messages = [];
  const attempt = async (i, value) => {
    await page.clock.setFixedTime(start + i * 600_000);
    await page.goto(APP);
    await page.locator("#nav-settings").click();
    await page.locator("#old-pin").fill(value);
    await page.locator("#new-pin").fill("246801");
    await page.locator("#new-pin2").fill("246801");
    await page.locator("#change-pin").click();
    await page.locator(".error").waitFor({ timeout: 30000 });
    return (await page.locator(".error strong").innerText()).trim();
  };
  for (let i = 1; i <= 10; i++) messages.push(await attempt(i, "000000"));
  const last = await attempt(11, PIN);
  await snap("locked");
  const kept = await keyCount();
  say(`LOCK ${[...new Set(messages)].join(" / ")}|${last}|${kept}`);
}

// The first key with a certificate, seen 10 days before its certificate ends and a day after: the
// warning, then the statement that it can no longer sign (the page's clock is moved; nothing else is).
async function certEnd() {
  const open = async () => {
    await page.goto(APP);
    await page.locator("#new-key").waitFor();
    await page.locator("ul.list li", { has: page.locator("span.cert-subject") }).first().locator("button.link").click();
    return page.locator("#cert-not-after");
  };
  const notAfter = Number(await (await open()).getAttribute("data-not-after"));
  if (!Number.isFinite(notAfter) || notAfter <= 0) throw new Error(`no certificate end on the key's page: ${notAfter}`);
  const seen = async (at, name) => {
    await page.clock.setFixedTime(at);
    await open();
    const note = page.locator("#cert-subject .cert-time");
    await note.waitFor({ timeout: 30000 });
    await snap(name);
    return `${await note.getAttribute("class")}: ${(await note.innerText()).trim()}`;
  };
  const ending = await seen(notAfter - 10 * 86_400_000, "cert-ending");
  const ended = await seen(notAfter + 3_600_000, "cert-ended");
  say(`CERTEND ${ending}|${ended}`);
}

const lines = createInterface({ input: process.stdin });
try {
  for await (const line of lines) {
    const [cmd, ...rest] = line.split(" ");
    const arg = rest.join(" ");
    if (cmd === "SETUP") await setup();
    else if (cmd === "QR") await qr(arg);
    else if (cmd === "QRAS") await qr(rest.slice(1).join(" "), rest[0]);
    else if (cmd === "PROMPT") await prompt();
    else if (cmd === "UNCHECKED") {
      // The digest path: the warning, Approve held back until the person ticks the separate confirmation.
      const warning = await page.locator("#prompt-unchecked").innerText();
      const held = await page.locator("#approve").isDisabled();
      await page.locator("#unchecked-ok").check();
      await snap("prompt-unchecked");
      say(`UNCHECKED ${held ? "held" : "NOT HELD"}|${await page.locator("#approve").isDisabled() ? "still held" : "released"}|${warning}`);
    }
    else if (cmd === "PDF") await pdf();
    else if (cmd === "SAMEDEVICE") await sameDevice(arg);
    else if (cmd === "APPROVE" || cmd === "WRONGPIN") {
      await page.locator("#approve").click();
      await pin(cmd === "APPROVE" ? PIN : "999999");
      await page.locator("#prompt").waitFor({ state: "detached", timeout: 60000 });
      say(`ANSWERED ${await errorText()}`);
    } else if (cmd === "DECLINE") {
      await page.locator("#decline").click();
      await page.locator("#prompt").waitFor({ state: "detached", timeout: 30000 });
      say("ANSWERED");
    } else if (cmd === "ENDED") {
      // Its notice, and the session's end as the screen knows it (the connection closed).
      await page.waitForFunction(() => document.querySelectorAll("#notices li").length > 0, null, { timeout: 60000 });
      await page.locator('section.sign[data-phase="ended"]').waitFor({ timeout: 60000 });
      await snap("ended");
      say(`ENDED ${await page.locator("#notices").innerText()}`);
    } else if (cmd === "OFFLINE") {
      await page.goto(APP);
      await page.locator("#new-key").waitFor({ timeout: 30000 });
      await ctx.setOffline(true);
      await page.reload();
      await page.locator("#new-key").waitFor({ timeout: 30000 });
      await snap("offline");
      await ctx.setOffline(false);
      say("OFFLINE OK");
    } else if (cmd === "UNREACHABLE") {
      await page.goto(APP);
      await page.locator("#new-key").waitFor({ timeout: 30000 });
      await ctx.setOffline(true);
      await page.goto(`${APP}#${encodeURIComponent(arg)}`);
      const named = page.locator("#computer-name");
      const failed = page.locator(".error");
      await Promise.race([named.waitFor({ timeout: 30000 }), failed.waitFor({ timeout: 30000 })]);
      if (await named.isVisible()) {
        await named.fill("test laptop");
        await page.locator("#name-ok").click();
      }
      await failed.waitFor({ timeout: 30000 });
      await snap("unreachable");
      say(`UNREACHABLE ${(await errorText()).replace(/\s+/g, " ")}`);
      await ctx.setOffline(false);
      await page.goto(APP);
      await page.locator("#new-key").waitFor({ timeout: 30000 });
    } else if (cmd === "LANGS") await langs();
    else if (cmd === "CAMERA") {
      await ctx.close();
      [ctx, page] = await launch(["--use-fake-device-for-media-stream", `--use-file-for-fake-video-capture=${arg}`]);
      await page.goto(APP);
      await page.locator("nav button").nth(1).click();
      await page.locator("#scan").click();
      await page.locator("#sas").waitFor({ timeout: 60000 }).catch(async () => {
        throw new Error(`camera: ${await errorText()}`);
      });
      await snap("scanned");
      say(`SAS ${await page.locator("#sas").innerText()}`);
    } else if (cmd === "LINKLATER") {
      await page.evaluate((h) => history.pushState(null, "", h), `#${encodeURIComponent(arg)}`);
      say("LINKLATER");
    } else if (cmd === "HOSTILE") {
      if (arg) await page.goto(`${APP}#${encodeURIComponent(arg)}`);
      else await page.evaluate(() => dispatchEvent(new HashChangeEvent("hashchange")));
      await page.locator(".error", { hasText: "<img" }).waitFor({ timeout: 30000 }).catch(async () => {
        const screen = (await page.locator("main").innerText()).replace(/\n/g, " ").slice(0, 200);
        throw new Error(`hostile: error "${await errorText()}", screen "${screen}", at ${page.url()}`);
      });
      await snap("hostile-origin");
      const text = await page.locator(".error").innerText();
      const images = await page.locator("img").count();
      const title = await page.title();
      say(`HOSTILE images=${images} title=${title} text=${text.replace(/\n/g, " ")}`);
    } else if (cmd === "DEVICES" || cmd === "REMOVESELF") {
      await page.goto(APP);
      await page.locator("ul.list button.link").first().click();
      await page.locator("button.devices").click();
      await page.locator(".device").first().waitFor({ timeout: 30000 }).catch(async () => {
        throw new Error(`devices: ${await errorText()}`);
      });
      if (cmd === "DEVICES") {
        await snap("devices");
        say(`DEVICES ${await page.locator(".device").count()} ${await page.locator(".device .tag").count()}`);
      } else {
        page.once("dialog", (d) => d.accept());
        await page.locator(".device", { has: page.locator(".tag") }).locator("button.danger").click();
        await page.locator("#new-key").waitFor({ timeout: 30000 }).catch(async () => {
          throw new Error(`remove: ${await errorText()}`);
        });
        await page.locator("ul.list button.link").first().click();
        await page.locator("#cert-subject").waitFor();
        await snap("removed-self");
        say(`REMOVED ${await page.locator(".registration").count()}`);
      }
    } else if (cmd === "IMPORTPFX") {
      const [file, password, label, login] = rest;
      await page.goto(APP);
      await page.locator("#import-pfx").click();
      await page.locator("#pfx-file").setInputFiles(file);
      await page.locator("#pfx-password").fill(password);
      await page.locator("#pfx-label").fill(label);
      await snap("import-pfx");
      await page.locator("#do-import").click();
      await pin();
      await page.locator("#register").waitFor({ timeout: 60000 }).catch(async () => {
        throw new Error(`import: ${await errorText()}`);
      });
      const subject = await page.locator("#cert-subject").innerText();
      await snap("imported-pfx");
      await page.locator("#register").click();
      await page.locator("#login").fill(login);
      await page.locator("#do-register").click();
      await pin();
      await page.locator("#registered").waitFor({ timeout: 30000 }).catch(async () => {
        throw new Error(`registration: ${await errorText()}`);
      });
      say(`IMPORTED ${subject}`);
    } else if (cmd === "EXPORTPFX") {
      await page.goto(APP);
      await page.locator("ul.list button.link").first().click();
      await page.locator("#export-pfx").click();
      await page.locator("#pfx-pass1").fill(arg);
      await page.locator("#pfx-pass2").fill(arg);
      await page.locator("#do-export").click();
      await pin();
      await page.locator("#pfx-download").waitFor({ timeout: 60000 }).catch(async () => {
        throw new Error(`export: ${await errorText()}`);
      });
      const [download] = await Promise.all([page.waitForEvent("download"), page.locator("#pfx-download").click()]);
      const path = join(SHOTS, "app-export.pfx");
      await download.saveAs(path);
      await snap("exported-pfx");
      say(`PFX ${path}`);
    } else if (cmd === "ENROLLINK") {
      await page.goto(arg);
      await page.locator("#enrol-new-key").waitFor({ timeout: 30000 });
      await snap("enrol-link");
      await page.locator("#enrol-new-key").click();
      await pin();
      await page.locator("#ask-cert").waitFor({ timeout: 30000 }).catch(async () => {
        throw new Error(`enrol link: ${await errorText()}`);
      });
      const prefilled = `${await page.locator("#ra-url").inputValue()} ${await page.locator("#ra-code").inputValue()}`;
      await page.locator("#ask-cert").click();
      await pin();
      await page.locator("#install").waitFor({ timeout: 30000 }).catch(async () => {
        throw new Error(`enrol link: ${await errorText()}`);
      });
      await page.locator("#install").click();
      await pin();
      await page.locator("#register").waitFor({ timeout: 30000 });
      say(`ENROLLED ${await page.locator("#cert-subject").innerText()} | ${prefilled}`);
    } else if (cmd === "CHANGEPIN") {
      await page.goto(APP);
      await page.locator("#nav-settings").click();
      // The new PIN typed two ways: refused, in the person's language, before the vault is read. The
      // current PIN stays the PIN (the change below is made with it).
      await page.locator("#old-pin").fill(PIN);
      await page.locator("#new-pin").fill("654321");
      await page.locator("#new-pin2").fill("654312");
      await page.locator("#change-pin").click();
      await page.locator(".error").waitFor({ timeout: 30000 });
      const differ = await errorText();
      if (!/invalid_input/.test(differ) || !/(The two PINs differ|Ikki PIN-kod bir xil emas|PIN-коды не совпадают)/.test(differ)) {
        throw new Error(`a new PIN typed two ways: ${differ}`);
      }
      if ((await page.locator("#new-pin").inputValue()) !== "" || (await page.locator("#new-pin2").inputValue()) !== "") {
        throw new Error("a new PIN typed two ways stays in the form");
      }
      await snap("pin-typed-two-ways");
      await page.locator("#old-pin").fill(PIN);
      await page.locator("#new-pin").fill("654321");
      await page.locator("#new-pin2").fill("654321");
      await page.locator("#change-pin").click();
      await page.locator("#pin-changed").waitFor({ timeout: 30000 }).catch(async () => {
        throw new Error(`change PIN: ${await errorText()}`);
      });
      PIN = "654321";
      pinsUsed.push(PIN);
      await snap("pin-changed");
      say("PIN CHANGED");
    } else if (cmd === "BACKUP") {
      await page.goto(APP);
      await page.locator("#nav-settings").click();
      await page.locator("#backup-pass1").fill(arg);
      await page.locator("#backup-pass2").fill(arg);
      await snap("settings");
      await page.locator("#make-backup").click();
      await pin();
      await page.locator("#backup-download").waitFor({ timeout: 30000 }).catch(async () => {
        throw new Error(`backup: ${await errorText()}`);
      });
      const [download] = await Promise.all([page.waitForEvent("download"), page.locator("#backup-download").click()]);
      const path = join(SHOTS, "app-backup.json");
      await download.saveAs(path);
      await snap("backup-made");
      say(`BACKUP ${path}`);
    } else if (cmd === "RESTORE") {
      const [file, passphrase] = rest;
      const fresh = await chromium.launchPersistentContext(join(tmpdir(), `kalit-app-restore-${process.pid}`), {
        ...pixel,
        executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
        headless: true,
        locale: "ru-RU",
      });
      const p2 = fresh.pages()[0] ?? (await fresh.newPage());
      await p2.goto(APP);
      await p2.locator("details summary").click();
      await p2.locator("#restore-file").setInputFiles(file);
      await p2.locator("#restore-pass").fill(passphrase);
      await p2.locator("#restore-pin1").fill("135790");
      await p2.locator("#restore-pin2").fill("135790");
      await p2.locator("#do-restore").click();
      await p2.locator("#restored").waitFor({ timeout: 30000 }).catch(async () => {
        throw new Error(`restore: ${(await p2.locator(".error").count()) ? await p2.locator(".error").innerText() : "no answer"}`);
      });
      shot++;
      await p2.screenshot({ path: join(SHOTS, `${String(shot).padStart(2, "0")}-restored-ru.png`), fullPage: true });
      say(`RESTORED ${await p2.locator("#restored").innerText()}`);
      await fresh.close();
    }
    else if (cmd === "NOCAMERA") await noCamera();
    else if (cmd === "FULL") await storageFull();
    else if (cmd === "LOCK") await lockOut();
    else if (cmd === "CERTEND") await certEnd();
    else if (cmd === "QUIT") break;
    else throw new Error(`unknown command ${cmd}`);
  }
  // Nothing secret reached the console.
  const leaked = consoleLines.filter((l) => pinsUsed.some((p) => l.includes(p)));
  say(leaked.length ? `CONSOLE LEAK ${leaked.join(" | ")}` : "CONSOLE CLEAN");
  say(`FOREIGN ${foreign.size ? [...foreign].join(" ") : "none"}`);
} catch (e) {
  await snap("failure").catch(() => undefined);
  say(`FAILED ${(e instanceof Error ? e.message : String(e)).replace(/\n/g, " | ")}`);
} finally {
  await ctx.close();
}
