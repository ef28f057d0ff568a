// A phone made only of the TypeScript protocol code, for the end-to-end test against the Rust agent and
// relay (crates/kalit-cli/tests/e2e/phone_app.rs): it takes a key and its certificate chain from a
// `kalit vault backup` file, registers a fresh device key at the relay, then joins every QR it is given
// on standard input and answers each request as told, printing what a screen would show.
//
//   env: RELAY_URL, BACKUP_FILE, BACKUP_PASSPHRASE, LOGIN, [BACKUP_OUT: also writes the key into a new
//        backup there, as the app writes it, under the same passphrase, for `kalit vault restore`]
//   stdin: "QR <text>" lines, each followed by the answers for its requests: "approve" or "decline"
//   stdout: REGISTERED <device id>, SAS <code>, PROMPT <id> <name> <sha256> <origin>, DONE <signed> <declined> <withdrawn>,
//           FAILED <code> <message>

import { readFileSync, writeFileSync } from "node:fs";
import { createInterface } from "node:readline";

import WebSocket from "ws";

import { b64 } from "../src/protocol/bytes.js";
import { signCmsDetached } from "../src/protocol/cms.js";
import { Failure } from "../src/protocol/errors.js";
import { SigningKey, generateDeviceKey } from "../src/protocol/keys.js";
import type { PhoneAnswer, Prompt } from "../src/protocol/phone-session.js";
import { openBackup, writeBackup } from "../src/protocol/seal.js";
import { MemoryStore } from "../src/vault/store.js";
import { restoreVault } from "../src/vault/vault.js";
import { type PairUi, type WebSocketLike, pair } from "../src/phone/pair.js";
import { Relay } from "../src/phone/relay.js";

const env = (k: string): string => {
  const v = process.env[k];
  if (!v) throw new Error(`${k} is not set`);
  return v;
};

const lines = createInterface({ input: process.stdin })[Symbol.asyncIterator]();
async function nextLine(): Promise<string | null> {
  const r = await lines.next();
  return r.done ? null : r.value;
}

async function main(): Promise<void> {
  const contents = await openBackup(readFileSync(env("BACKUP_FILE")), env("BACKUP_PASSPHRASE"));
  const k = contents.keys[0];
  if (!k) throw new Failure("not_found", "the backup holds no key");
  const key = SigningKey.fromPkcs8(b64.decode(k.pkcs8)!);
  const chain = k.certificates.map((c) => b64.decode(c)!);
  const out = process.env.BACKUP_OUT;
  if (out) {
    const store = new MemoryStore();
    const { vault } = await restoreVault(store, contents, "123456", Date.now());
    const u = await vault.unlock("123456", Date.now());
    const { contents: again } = await u.backupContents(vault.header.policy, []);
    writeFileSync(out, await writeBackup(again, env("BACKUP_PASSPHRASE"), Date.now()));
    u.lock();
    console.log(`BACKUP ${out}`);
  }
  const relay = new Relay(env("RELAY_URL"));
  const { device } = await generateDeviceKey();
  const registration = await relay.register({ login: env("LOGIN"), device, deviceName: "ts-phone", chain, certificateKey: key });
  console.log(`REGISTERED ${registration.deviceId}`);
  for (;;) {
    const line = await nextLine();
    if (line === null) break;
    if (!line.startsWith("QR ")) continue;
    const ui: PairUi = {
      connected: ({ sas }) => console.log(`SAS ${sas}`),
      async ask(p: Prompt, signal: AbortSignal): Promise<PhoneAnswer | null> {
        console.log(`PROMPT ${p.id} ${p.name} ${p.sha256} ${p.origin}`);
        const decision = await Promise.race([
          nextLine(),
          new Promise<null>((resolve) => signal.addEventListener("abort", () => resolve(null))),
        ]);
        if (signal.aborted || decision === null) return null;
        if (decision !== "approve") return { kind: "declined" };
        if (p.format === "cms") return { kind: "approved", signature: await signCmsDetached(key, chain, p.data, p.pss, new Date()) };
        const { signature } = await key.signDocument(p.data, p.pss);
        return { kind: "approved", signature };
      },
      notice: (kind, text) => console.log(`NOTICE ${kind} ${text}`),
    };
    try {
      const s = await pair({
        qrText: line.slice(3),
        nowSecs: Math.floor(Date.now() / 1000),
        registration,
        chain,
        device,
        relay,
        ui,
        connect: (url) => new WebSocket(url) as unknown as WebSocketLike,
      });
      console.log(`DONE ${s.signed} ${s.declined} ${s.withdrawn}`);
    } catch (e) {
      const f = e instanceof Failure ? e : new Failure("internal", String(e));
      console.log(`FAILED ${f.code} ${f.message}`);
    }
  }
  key.wipe();
}

main().catch((e: unknown) => {
  const f = e instanceof Failure ? e : new Failure("internal", e instanceof Error ? (e.stack ?? e.message) : String(e));
  console.log(`FAILED ${f.code} ${f.message}`);
  process.exitCode = 1;
});
