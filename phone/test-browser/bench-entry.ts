// Benchmarks in the browser, for test-browser/bench.mjs (served at /app/bench.js only while it runs).
// Each measurement interleaves Kalit's path with its baseline in the same page, median of N.

import { argon2idHere, KDF_DEFAULT, setArgon2id } from "../src/protocol/seal.js";
import { SigningKey } from "../src/protocol/keys.js";
import { workerArgon2id } from "../src/app/worker-kdf.js";
import { IndexedDbStore } from "../src/vault/store.js";
import { AppVault } from "../src/vault/vault.js";

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

async function time(f: () => Promise<unknown>): Promise<number> {
  const t = performance.now();
  await f();
  return performance.now() - t;
}

async function run(n: number): Promise<Record<string, { kalit: number; baseline: number }>> {
  setArgon2id(workerArgon2id("./argon2-worker.js"));
  const store = await IndexedDbStore.open();
  const vault = (await AppVault.exists(store)) ? await AppVault.open(store) : await AppVault.init(store, "bench-pin-123", Date.now());
  const out: Record<string, { kalit: number; baseline: number }> = {};
  // Unlock: counter write, Argon2id in the worker, AES-GCM open, counter reset; against bare hash-wasm
  // Argon2id with the same parameters in this page.
  const salt = crypto.getRandomValues(new Uint8Array(16));
  const a: number[] = [];
  const b: number[] = [];
  for (let i = 0; i < n; i++) {
    a.push(await time(async () => (await vault.unlock("bench-pin-123", Date.now())).lock()));
    b.push(await time(() => argon2idHere(new TextEncoder().encode("bench-pin-123"), salt, KDF_DEFAULT)));
  }
  out.unlock = { kalit: median(a), baseline: median(b) };
  // Signing: the app's path (unseal the PKCS#8, import it non-extractable, sign, wipe) against WebCrypto
  // signing with a key imported once.
  const u = await vault.unlock("bench-pin-123", Date.now());
  const doc = new TextEncoder().encode("Shartnoma / Договор / Contract\n".repeat(40));
  const algs = [
    ["p-256", { name: "ECDSA", namedCurve: "P-256" }, { name: "ECDSA", hash: "SHA-256" }],
    ["ed25519", { name: "Ed25519" }, { name: "Ed25519" }],
    ["rsa-2048", { name: "RSASSA-PKCS1-v1_5", hash: "SHA-256" }, { name: "RSASSA-PKCS1-v1_5" }],
  ] as const;
  for (const [alg, importParams, signParams] of algs) {
    const k = (await vault.keys()).find((x) => x.label === `bench ${alg}`) ?? (await u.generate(alg, `bench ${alg}`, false, Date.now()));
    const pkcs8 = await u.exportPkcs8(k.id);
    const bare = await crypto.subtle.importKey("pkcs8", pkcs8 as Uint8Array<ArrayBuffer>, importParams, false, ["sign"]);
    const x: number[] = [];
    const y: number[] = [];
    // Each sample is a batch of 20 signatures (the browser's clock is coarse); per-signature times.
    const batch = 20;
    for (let i = 0; i < n; i++) {
      x.push(
        (await time(async () => {
          for (let j = 0; j < batch; j++) {
            const s: SigningKey = await u.signingKey(k.id);
            await s.signDocument(doc, false);
            s.wipe();
          }
        })) / batch,
      );
      y.push((await time(async () => {
        for (let j = 0; j < batch; j++) await crypto.subtle.sign(signParams, bare, doc);
      })) / batch);
    }
    out[`sign ${alg}`] = { kalit: median(x), baseline: median(y) };
  }
  u.lock();
  return out;
}

(globalThis as unknown as { kalitBench: typeof run }).kalitBench = run;
