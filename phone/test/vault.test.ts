// The app's vault on a memory store: the PIN rules, keys of every algorithm, and damaged storage.

import assert from "node:assert/strict";
import { test } from "node:test";

import { ed25519 } from "@noble/curves/ed25519.js";

import { b64, utf8 } from "../src/protocol/bytes.js";
import { Failure } from "../src/protocol/errors.js";
import { openBackup, writeBackup } from "../src/protocol/seal.js";
import { AppVault, delayAfter, restoreVault } from "../src/vault/vault.js";
import { MemoryStore } from "../src/vault/store.js";

const NOW = 1_800_000_000_000;
const isCode = (code: string) => (e: unknown) => e instanceof Failure && e.code === code;

test("PIN: wrong ones counted before they are tried, delays, the lock", async () => {
  const store = new MemoryStore();
  await assert.rejects(AppVault.init(store, "12345", NOW), isCode("weak_secret"));
  const v = await AppVault.init(store, "123456", NOW, { max_attempts: 5, delay_base_ms: 1000 });
  await assert.rejects(AppVault.init(store, "654321", NOW), isCode("already_exists"));
  const u = await v.unlock("123456", NOW);
  u.lock();
  for (let i = 1; i <= 3; i++) {
    await assert.rejects(v.unlock("000000", NOW), isCode("wrong_pin"));
    assert.equal((await v.pinStatus(NOW)).failures, i);
  }
  assert.equal((await v.pinStatus(NOW)).waitMs, 0, "no delay for the first three");
  await assert.rejects(v.unlock("000000", NOW), isCode("wrong_pin"));
  const st = await v.pinStatus(NOW);
  assert.equal(st.waitMs, 1000);
  assert.equal(st.remaining, 1);
  // Even the right PIN waits for the delay.
  await assert.rejects(v.unlock("123456", NOW), isCode("try_later"));
  await assert.rejects(v.unlock("000000", NOW + 2000), isCode("locked"));
  await assert.rejects(v.unlock("123456", NOW + 10_000_000), isCode("locked"), "locked for good");
  // A vault opened again from storage keeps the count.
  assert.equal((await (await AppVault.open(store)).pinStatus(NOW)).locked, true);
  assert.deepEqual([4, 5, 6, 30].map((n) => delayAfter({ max_attempts: 10, delay_base_ms: 1000 }, n)), [1000, 2000, 4000, 300_000]);
});

test("a right PIN resets the count", async () => {
  const v = await AppVault.init(new MemoryStore(), "Парол-ўзбек1", NOW);
  await assert.rejects(v.unlock("wrong-pin", NOW), isCode("wrong_pin"));
  (await v.unlock("Парол-ўзбек1", NOW)).lock();
  assert.equal((await v.pinStatus(NOW)).failures, 0);
});

test("keys: every algorithm generated, listed, signed with; no-export refused; damage detected", async () => {
  const store = new MemoryStore();
  const v = await AppVault.init(store, "123456", NOW);
  const u = await v.unlock("123456", NOW);
  for (const [alg, label] of [
    ["p-256", "work"],
    ["ed25519", "home"],
    ["rsa-2048", "old portal"],
  ] as const) {
    const k = await u.generate(alg, label, label === "home", NOW);
    assert.equal(k.label, label);
    const key = await u.signingKey(k.id);
    const sig = await key.signDocument(utf8("hello"), false);
    assert.ok(sig.signature.length > 0);
    key.wipe();
  }
  await assert.rejects(u.generate("p-256", "work", false, NOW), isCode("already_exists"));
  await assert.rejects(u.generate("p-256", "<script>", false, NOW), isCode("invalid_input"));
  const keys = await v.keys();
  assert.deepEqual(keys.map((k) => [k.label, k.algorithm]).sort(), [["home", "ed25519"], ["old portal", "rsa"], ["work", "p-256"]]);
  const home = keys.find((k) => k.label === "home")!;
  await assert.rejects(u.exportPkcs8(home.id), isCode("refused_by_policy"));
  // The Ed25519 key signs verifiably with its stored public key.
  const work = keys.find((k) => k.label === "work")!;
  assert.equal((await u.exportPkcs8(work.id))[0], 0x30);
  const ed = await u.signingKey(home.id);
  const sig = await ed.signDocument(utf8("doc"), false);
  ed.wipe();
  const rec = store.map.get(`key/${home.id}`) as { header: string };
  const spki = b64.decode(JSON.parse(rec.header).spki)!;
  assert.ok(ed25519.verify(sig.signature, utf8("doc"), spki.subarray(12)));
  // A header altered in storage (another label) no longer opens: the header is the associated data.
  const r = store.map.get(`key/${work.id}`) as { header: string };
  r.header = r.header.replace('"work"', '"w0rk"');
  await assert.rejects(u.signingKey(work.id), isCode("corrupt"));
  await u.destroy(home.id);
  assert.equal((await v.keys()).length, 2);
  u.lock();
  await assert.rejects(u.signingKey(keys.find((k) => k.label === "old portal")!.id), isCode("locked"));
});

test("change PIN: the old PIN is checked and counted, the new one opens, the keys stay", async () => {
  const store = new MemoryStore();
  const v = await AppVault.init(store, "123456", NOW);
  const u = await v.unlock("123456", NOW);
  const k = await u.generate("p-256", "work", false, NOW);
  u.lock();
  await assert.rejects(v.changePin("000000", "654321", NOW), isCode("wrong_pin"));
  assert.equal((await v.pinStatus(NOW)).failures, 1);
  await assert.rejects(v.changePin("123456", "short", NOW), isCode("weak_secret"));
  await v.changePin("123456", "654321", NOW);
  const again = await AppVault.open(store);
  await assert.rejects(again.unlock("123456", NOW), isCode("wrong_pin"));
  const u2 = await again.unlock("654321", NOW);
  (await u2.signingKey(k.id)).wipe();
});

test("backup: written by the app, opened again, restored under a new PIN; no-export keys stay out", async () => {
  const v = await AppVault.init(new MemoryStore(), "123456", NOW);
  const u = await v.unlock("123456", NOW);
  const a = await u.generate("ed25519", "home", false, NOW);
  await u.generate("p-256", "pinned", true, NOW);
  const { contents, skipped } = await u.backupContents(v.header.policy, []);
  assert.deepEqual(skipped, ["pinned"]);
  await assert.rejects(writeBackup(contents, "short", NOW), isCode("weak_secret"));
  const file = await writeBackup(contents, "Парол-ўзбек1", NOW);
  await assert.rejects(openBackup(file, "wrong passphrase"), isCode("wrong_password"));
  const opened = await openBackup(file, "Парол-ўзбек1");
  const store = new MemoryStore();
  const { vault, keys } = await restoreVault(store, opened, "135790", NOW);
  assert.deepEqual(keys, ["home"]);
  const u2 = await vault.unlock("135790", NOW);
  const restored = (await vault.keys())[0]!;
  assert.equal(restored.fingerprint, a.fingerprint, "the same key");
  (await u2.signingKey(restored.id)).wipe();
  // A restore never overwrites a vault.
  await assert.rejects(restoreVault(store, opened, "135790", NOW), isCode("already_exists"));
  // A damaged backup: nothing is restored.
  const damaged = file.slice();
  damaged[damaged.length - 30]! ^= 1;
  await assert.rejects(openBackup(damaged, "Парол-ўзбек1"));
});
