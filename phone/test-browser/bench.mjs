// The phone app's benchmarks (docs/PERFORMANCE.md): in Debian's Chromium as a Pixel 7, on the app a relay
// serves; each figure is a ratio against a baseline measured in the same page, interleaved.
//   KALIT=./target/release/kalit node phone/test-browser/bench.mjs [N]
import { spawn } from "node:child_process";
import { mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import { gzipSync } from "node:zlib";

import { build } from "esbuild";
import { chromium, devices } from "playwright-core";

const here = dirname(fileURLToPath(import.meta.url));
const n = Number(process.argv[2] ?? 7);
const kalit = process.env.KALIT ?? "./target/release/kalit";

// First-load size: what /app/ transfers before anything is used (gzip, as a server would send it).
const dist = join(here, "..", "dist");
const first = ["index.html", "app.js", "app.css", "manifest.webmanifest", "icon-192.png", "sw.js"];
const later = ["argon2-worker.js"];
const gz = (f) => gzipSync(readFileSync(join(dist, f)), { level: 9 }).length;
const firstKb = first.reduce((s, f) => s + gz(f), 0) / 1000;
const laterKb = later.reduce((s, f) => s + gz(f), 0) / 1000;

const bundle = await build({
  entryPoints: [join(here, "bench-entry.ts")],
  bundle: true,
  format: "esm",
  target: "es2022",
  write: false,
  minify: true,
});

const data = mkdtempSync(join(tmpdir(), "kalit-bench-relay-"));
const relay = spawn(kalit, ["relay", "serve", "--data", data, "--listen", "127.0.0.1:0"], { stdio: ["ignore", "pipe", "inherit"] });
const url = await new Promise((resolve) => {
  createInterface({ input: relay.stdout }).once("line", (l) => resolve(l.trim().split(" ").pop()));
});
const { defaultBrowserType: _, ...pixel } = devices["Pixel 7"];
const browser = await chromium.launch({ executablePath: process.env.CHROMIUM || "/usr/bin/chromium", headless: true });
try {
  const ctx = await browser.newContext(pixel);
  const page = await ctx.newPage();
  await page.route(`${url}/app/bench.js`, (r) => r.fulfill({ contentType: "text/javascript", body: bundle.outputFiles[0].text }));
  await page.goto(`${url}/app/`);
  await page.addScriptTag({ url: `${url}/app/bench.js`, type: "module" });
  await page.waitForFunction(() => "kalitBench" in globalThis);
  const r = await page.evaluate((count) => globalThis.kalitBench(count), n);
  const version = browser.version();
  console.log(`Chromium ${version}, ${n} unlocks and ${n} batches of 20 signatures per algorithm, interleaved, medians.\n`);
  console.log("| measurement | app | baseline | ratio (baseline / app) | goal |");
  console.log("|---|---|---|---|---|");
  const row = (name, v, base, goal) =>
    console.log(`| ${name} | ${v.kalit.toFixed(3)} ms | ${v.baseline.toFixed(3)} ms ${base} | ${(v.baseline / v.kalit).toFixed(3)} | ${goal} |`);
  row("unlock (counter, Argon2id m=64 MiB t=3 p=1 in the Worker, AES-GCM)", r.unlock, "bare hash-wasm Argon2id in the page", ">= 0.90 (within 10 %)");
  for (const alg of ["p-256", "ed25519", "rsa-2048"]) {
    row(`sign ${alg} (unseal PKCS#8, import, sign, wipe)`, r[`sign ${alg}`], "WebCrypto sign, key imported once", "none (the cost of keeping keys sealed)");
  }
  console.log(`| first load of /app/ (gzip: ${first.join(", ")}) | ${firstKb.toFixed(1)} KB | 250 KB budget | ${(250 / firstKb).toFixed(2)} | <= 250 KB |`);
  console.log(`| loaded on first unlock (gzip: ${later.join(", ")}) | ${laterKb.toFixed(1)} KB | | | |`);
} finally {
  await browser.close();
  relay.kill();
}
