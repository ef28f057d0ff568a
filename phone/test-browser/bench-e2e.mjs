// End-to-end signature time (docs/PERFORMANCE.md): a page's sign request -> agent -> relay -> phone ->
// back, answered by the phone app (Debian's Chromium as a Pixel 7) and, as the baseline in the same run,
// by the Rust command-line phone (`kalit vault pair`). Both run against one `kalit demo --interactive`
// (RA, relay, agent, portal origin); the "person" answers at once on both phones (the app through the
// browser driver's clicks and PIN entry, the Rust phone through prepared answers on its standard input),
// so the figures compare the software, PIN unlock (Argon2id) included. Not a test: it prints a table.
//   KALIT=./target/release/kalit node phone/test-browser/bench-e2e.mjs [N]
import { spawn } from "node:child_process";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const n = Number(process.argv[2] ?? 10);
const kalit = process.env.KALIT ?? "./target/release/kalit";
const tmp = mkdtempSync(join(tmpdir(), "kalit-bench-e2e-"));

/** Lines of a child's standard output, awaited one at a time: the next line that starts with `needle`
 * (leading spaces aside) or matches it (a RegExp). A line starting with FAILED (the app driver's report
 * of a failed step) fails the wait at once. */
function lineReader(stream) {
  const queue = [];
  const waiting = [];
  const hit = (needle, l) => (needle instanceof RegExp ? needle.test(l) : l.trimStart().startsWith(needle));
  createInterface({ input: stream }).on("line", (l) => {
    if (l.startsWith("FAILED")) {
      for (const w of waiting.splice(0)) w.reject(new Error(l));
      return;
    }
    const w = waiting.findIndex((x) => hit(x.needle, l));
    if (w >= 0) {
      const [x] = waiting.splice(w, 1);
      if (x.skip) queue.length = 0;
      x.resolve(l);
    } else queue.push(l);
  });
  // `skip`: forget every earlier line too (later waits read only what came after this one).
  return (needle, ms = 120_000, skip = false) => {
    const i = queue.findIndex((l) => hit(needle, l));
    if (i >= 0) return Promise.resolve(queue.splice(0, i + 1).pop());
    return new Promise((resolve, reject) => {
      const t = setTimeout(() => reject(new Error(`no line ${needle} within ${ms} ms`)), ms);
      waiting.push({ needle, skip, resolve: (l) => (clearTimeout(t), resolve(l)), reject: (e) => (clearTimeout(t), reject(e)) });
    });
  };
}

// The whole system, as a person would start it.
const demo = spawn(kalit, ["demo", "--interactive", "--out", join(tmp, "demo")], { stdio: ["ignore", "pipe", "inherit"] });
process.on("exit", () => demo.kill("SIGINT"));
const demoLine = lineReader(demo.stdout);
const field = (line, label) => line.slice(line.indexOf(label) + label.length).trim().split(/\s+/)[0];
await demoLine("Interactive:", 300_000, true);
const portal = new URL(field(await demoLine("portal:"), "portal:")).origin;
const services = await demoLine("agent:");
const agent = field(services, "agent:");
const ra = field(services, "RA:");
const vault = field(await demoLine("phone vault:"), "phone vault:");
const pin = field(await demoLine("phone PIN:"), "phone PIN:");
const code = (await demoLine(/with the code \S+,/)).match(/with the code (\S+?),/)[1];
const appUrl = field(await demoLine("phone app:"), "phone app:");
console.error(`demo: portal ${portal} agent ${agent} RA ${ra} app ${appUrl} vault ${vault}`);

// The page's side: the agent's API, from the portal's origin.
async function api(method, path, token, body) {
  const headers = { Origin: portal, "Content-Type": "application/json" };
  if (token) headers.Authorization = `Bearer ${token}`;
  const r = await fetch(`${agent}${path}`, { method, headers, body: body ? JSON.stringify(body) : undefined });
  const text = await r.text();
  if (!r.ok) throw new Error(`${method} ${path}: ${r.status} ${text}`);
  return text ? JSON.parse(text) : null;
}
async function connected(s) {
  for (let i = 0; i < 600; i++) {
    const st = await api("GET", `/v1/sessions/${s.session}`, s.token);
    if (st.phase === "connected") return;
    if (st.phase === "closed") throw new Error(`session closed: ${JSON.stringify(st.error)}`);
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error("no phone paired");
}
const doc = (i) => ({ data: Buffer.from(`Ariza ${i}: benchmark document\n`).toString("base64"), name: "ariza.txt", format: "raw" });

// The app: a new phone in Chromium, set up as a citizen would (PIN, key, certificate, registration).
const app = spawn(process.execPath, [join(here, "app.mjs")], {
  env: { ...process.env, APP_URL: appUrl, RA_URL: ra, CODE: code, LOGIN: "bench-app", SHOTS: "none" },
  stdio: ["pipe", "pipe", "inherit"],
});
process.on("exit", () => app.kill());
const appLine = lineReader(app.stdout);
const say = (s) => app.stdin.write(`${s}\n`);
say("SETUP");
await appLine("REGISTERED");

async function appRound() {
  const s = await api("POST", "/v1/sessions", null, {});
  say(`QR ${s.qr}`);
  await appLine("SAS ");
  await connected(s);
  const times = [];
  for (let i = 0; i < n; i++) {
    const t0 = performance.now();
    const signed = api("POST", `/v1/sessions/${s.session}/sign`, s.token, doc(i));
    say("PROMPT");
    await appLine("PROMPT ");
    say("APPROVE");
    await appLine("ANSWERED");
    await signed;
    times.push(performance.now() - t0);
  }
  await api("DELETE", `/v1/sessions/${s.session}`, s.token);
  say("ENDED");
  await appLine("ENDED");
  return times;
}

// The demo's walk already paired its phone with this agent, so the computer is known and not named again.
let knownComputer = true;
async function rustRound() {
  const s = await api("POST", "/v1/sessions", null, {});
  const phone = spawn(kalit, ["vault", "--vault", vault, "pair", s.qr], { stdio: ["pipe", "ignore", "ignore"] });
  // The person's answers, ready before they are asked: a name for a new computer, the PIN, then for
  // each request "y" and the PIN.
  const answers = [...(knownComputer ? [] : ["bench computer"]), pin];
  for (let i = 0; i < n; i++) answers.push("y", pin);
  phone.stdin.write(`${answers.join("\n")}\n`);
  knownComputer = true;
  await connected(s);
  const times = [];
  for (let i = 0; i < n; i++) {
    const t0 = performance.now();
    await api("POST", `/v1/sessions/${s.session}/sign`, s.token, doc(i));
    times.push(performance.now() - t0);
  }
  await api("DELETE", `/v1/sessions/${s.session}`, s.token);
  await new Promise((r) => phone.once("exit", r));
  return times;
}

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const rust = [];
const web = [];
try {
  // Interleaved rounds (one session each, N signatures per session), so drift hits both alike.
  for (let round = 0; round < 2; round++) {
    rust.push(...(await rustRound()));
    web.push(...(await appRound()));
  }
  const mr = median(rust);
  const ma = median(web);
  console.log(`end-to-end signature (raw, P-256), ${rust.length} per phone, median ms:`);
  console.log(`  Rust phone (kalit vault pair)   ${mr.toFixed(0)}`);
  console.log(`  phone app (Chromium, Pixel 7)   ${ma.toFixed(0)}   ratio ${(ma / mr).toFixed(2)}x`);
} finally {
  say("QUIT");
  demo.kill("SIGINT");
}
