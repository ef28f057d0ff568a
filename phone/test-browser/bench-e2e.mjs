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

/** Lines of a child's standard output, awaited one prefix at a time. */
function lineReader(stream) {
  const queue = [];
  const waiting = [];
  createInterface({ input: stream }).on("line", (l) => {
    const w = waiting.findIndex((x) => l.includes(x.needle));
    if (w >= 0) waiting.splice(w, 1)[0].resolve(l);
    else queue.push(l);
  });
  return (needle, ms = 120_000) => {
    const i = queue.findIndex((l) => l.includes(needle));
    if (i >= 0) return Promise.resolve(queue.splice(i, 1)[0]);
    return new Promise((resolve, reject) => {
      const t = setTimeout(() => reject(new Error(`no line with ${JSON.stringify(needle)} within ${ms} ms`)), ms);
      waiting.push({ needle, resolve: (l) => (clearTimeout(t), resolve(l)) });
    });
  };
}

// The whole system, as a person would start it.
const demo = spawn(kalit, ["demo", "--interactive", "--out", join(tmp, "demo")], { stdio: ["ignore", "pipe", "inherit"] });
const demoLine = lineReader(demo.stdout);
const field = (line, label) => line.slice(line.indexOf(label) + label.length).trim().split(/\s+/)[0];
const portal = new URL(field(await demoLine("portal:", 300_000), "portal:")).origin;
const services = await demoLine("agent:");
const agent = field(services, "agent:");
const ra = field(services, "RA:");
const vault = field(await demoLine("phone vault:"), "phone vault:");
const pin = field(await demoLine("phone PIN:"), "phone PIN:");
const code = (await demoLine("with the code")).match(/with the code (\S+?),/)[1];
const appUrl = field(await demoLine("phone app:"), "phone app:");

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
  env: { ...process.env, APP_URL: appUrl, RA_URL: ra, CODE: code, LOGIN: "bench-app", SHOTS: join(tmp, "shots") },
  stdio: ["pipe", "pipe", "inherit"],
});
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

let knownComputer = false;
async function rustRound() {
  const s = await api("POST", "/v1/sessions", null, {});
  const phone = spawn(kalit, ["vault", "--vault", vault, "pair", s.qr], { stdio: ["pipe", "ignore", "inherit"] });
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
