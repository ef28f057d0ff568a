// The committed conformance vectors (crates/kalit-core/vectors), which the Rust core writes and replays,
// replayed by the TypeScript protocol code: the same bytes, the same actions, the same texts.

import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { test } from "node:test";

import { ed25519, ed25519ph, x25519 } from "@noble/curves/ed25519.js";

import { type AgentAction, AgentSession } from "../src/protocol/agent-session.js";
import { fromHex, fromUtf8, toHex, utf8 } from "../src/protocol/bytes.js";
import { Channel } from "../src/protocol/channel.js";
import * as display from "../src/protocol/display.js";
import { Failure } from "../src/protocol/errors.js";
import { NKpsk0Initiator, NKpsk0Responder } from "../src/protocol/noise.js";
import { type PhoneAction, type PhoneAnswer, PhoneSession } from "../src/protocol/phone-session.js";
import * as purpose from "../src/protocol/purpose.js";
import { Qr } from "../src/protocol/qr.js";
import { deriveKey, open, openBackup, seal } from "../src/protocol/seal.js";
import { keyId, statements, verifyAttestation, verifyEd25519, verifyOriginAttestation } from "../src/protocol/statement.js";
import {
  type ChannelMessage,
  parseChannelMessage,
  parseTunnelEvent,
  readAttestation,
  readOriginAttestation,
  serializeChannelMessage,
} from "../src/protocol/wire.js";

// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Json = any;
const VECTORS = new URL("../../../crates/kalit-core/vectors/", import.meta.url);
const load = (name: string): Json => JSON.parse(readFileSync(new URL(name, VECTORS), "utf8"));
const h = (s: string): Uint8Array => {
  const b = fromHex(s);
  assert.ok(b, `hex: ${s.slice(0, 20)}`);
  return b;
};

test("session-v2: QR, keys, handshake both ways, SAS and every frame", () => {
  const v = load("session-v2.json");
  assert.equal(v.session_version, 2);
  const qr = Qr.parse(v.qr_text);
  assert.equal(qr.tunnelId(), v.tunnel_id);
  assert.equal(toHex(qr.psk()), v.psk);
  assert.equal(qr.computerId(), v.computer_id);
  assert.equal(toHex(x25519.getPublicKey(h(v.computer_private))), v.computer_public);
  assert.equal(toHex(qr.agentPublic), v.computer_public);

  const prologue = utf8(v.qr_text);
  const phone = new NKpsk0Initiator(prologue, qr.agentPublic, qr.psk(), h(v.phone_ephemeral_private));
  const msg1 = phone.writeMessage1();
  assert.equal(toHex(msg1), v.msg1);
  const agent = new NKpsk0Responder(prologue, h(v.computer_private), qr.psk(), h(v.agent_ephemeral_private));
  assert.equal(agent.readMessage1(msg1).length, 0);
  const { message: msg2, transport: agentT } = agent.writeMessage2();
  assert.equal(toHex(msg2), v.msg2);
  const phoneCh = new Channel(phone.readMessage2(msg2).transport);
  const agentCh = new Channel(agentT);
  assert.equal(phoneCh.sas, v.sas);
  assert.equal(agentCh.sas, v.sas);

  assert.ok(v.transcript.length >= 5);
  for (const entry of v.transcript) {
    const [sender, receiver] = entry.from === "phone" ? [phoneCh, agentCh] : [agentCh, phoneCh];
    const message = parseChannelMessage(JSON.stringify(entry.message));
    // Written byte for byte as the Rust side writes it...
    assert.deepEqual(sender.seal(message).map(toHex), entry.frames);
    // ... and read back as the same message.
    let got: ChannelMessage | null = null;
    for (const f of entry.frames) got = receiver.open(h(f));
    assert.ok(got);
    assert.equal(serializeChannelMessage(got), serializeChannelMessage(message));
  }
});

test("session-v2: an altered QR, a tampered, replayed or foreign frame breaks the channel", () => {
  const v = load("session-v2.json");
  const qr = Qr.parse(v.qr_text);
  const start = (text: string) => {
    const p = new NKpsk0Initiator(utf8(text), qr.agentPublic, qr.psk(), h(v.phone_ephemeral_private));
    return { p, m1: p.writeMessage1() };
  };
  // Another prologue (one altered character of the QR): the agent cannot read the first message.
  const { m1 } = start(`${v.qr_text} `);
  const agent = new NKpsk0Responder(utf8(v.qr_text), h(v.computer_private), qr.psk(), h(v.agent_ephemeral_private));
  assert.throws(() => agent.readMessage1(m1), /does not decrypt/);
  // A tampered frame, then nothing more is read.
  const { p } = start(v.qr_text);
  const ch = new Channel(p.readMessage2(h(v.msg2)).transport);
  const agentFrames = v.transcript.filter((e: Json) => e.from === "agent").flatMap((e: Json) => e.frames) as string[];
  const bad = h(agentFrames[0]!);
  bad[5]! ^= 1;
  assert.throws(() => ch.open(bad), (e: unknown) => e instanceof Failure && e.code === "channel");
  assert.throws(() => ch.open(h(agentFrames[0]!)), /already failed/);
  // Replayed and reordered frames.
  const fresh = () => new Channel(start(v.qr_text).p.readMessage2(h(v.msg2)).transport);
  const c1 = fresh();
  c1.open(h(agentFrames[0]!));
  assert.throws(() => c1.open(h(agentFrames[0]!)));
  assert.throws(() => fresh().open(h(agentFrames[1]!)));
  assert.throws(() => fresh().open(new Uint8Array(16)));
  assert.throws(() => fresh().open(new Uint8Array(65536)));
});

test("statements-v1: every statement built from its fields, every signature checked", () => {
  const v = load("statements-v1.json");
  const att = v.attestation;
  const text = (x: string) => fromUtf8(h(x))!;
  let certificateStatements = 0;
  for (const s of v.statements) {
    const f = s.fields as string[];
    const built =
      s.namespace === "kalit/v1/register"
        ? statements.register(text(f[0]!), h(f[1]!), text(f[2]!), h(f[3]!), text(f[4]!))
        : s.namespace === "kalit/v1/device-removal"
          ? statements.deviceRemoval(text(f[0]!), h(f[1]!), text(f[2]!), text(f[3]!), text(f[4]!))
          : s.namespace === "kalit/v1/device-request"
            ? statements.deviceRequest(text(f[0]!), h(f[1]!), text(f[2]!), text(f[3]!), text(f[4]!), text(f[5]!))
            : s.namespace === "kalit/v1/origin"
              ? statements.origin(v.origin_attestation)
              : statements.attestation(att);
    assert.equal(toHex(built.bytes), s.bytes, s.namespace);
    const sig = h(s.signature);
    if (s.signer.startsWith("certificate")) {
      certificateStatements++;
      const pub = h(v.certificate_key_public);
      assert.ok(ed25519ph.verify(sig, built.bytes, pub, { context: utf8("kalit/v1/statement") }));
      // Never a plain (document) Ed25519 signature.
      assert.throws(() => verifyEd25519(pub, built.bytes, sig));
    } else {
      const pub = h(s.signer.startsWith("device") ? v.device_public : v.relay_public);
      verifyEd25519(pub, built.bytes, sig);
      const other = built.bytes.slice();
      other[other.length - 1]! ^= 1;
      assert.throws(() => verifyEd25519(pub, other, sig), (e: unknown) => e instanceof Failure && e.code === "invalid_signature");
    }
  }
  assert.equal(certificateStatements, 2);
  assert.equal(toHex(ed25519.getPublicKey(h(v.device_seed))), v.device_public);
});

test("relay-keys-v1: identity rotation, endorsed signing keys accepted and refused as in Rust", () => {
  const v = load("relay-keys-v1.json");
  const root = h(v.root_public);
  assert.equal(keyId(root), v.relay_id);
  assert.equal(toHex(ed25519.getPublicKey(h(v.root_seed))), v.root_public);
  const e = v.endorsement;
  const built = statements.relayKey(e.key);
  assert.equal(toHex(built.bytes), e.bytes);
  verifyEd25519(root, built.bytes, h(e.signature));
  let n = 0;
  for (const c of v.cases) {
    const verdict = (() => {
      try {
        if (c.kind === "origin") verifyOriginAttestation(root, readOriginAttestation(c.signed));
        else verifyAttestation(root, readAttestation(c.signed));
        return true;
      } catch (err) {
        assert.ok(err instanceof Failure, String(err));
        return false;
      }
    })();
    assert.equal(verdict, c.valid, c.name);
    n++;
  }
  assert.equal(n, 14);
  // The hello carrying an endorsed attestation, read and written byte for byte as the Rust phone writes it.
  const hello = parseChannelMessage(v.hello);
  assert.equal(serializeChannelMessage(hello), v.hello);
  assert.ok(hello.type === "hello" && hello.attestation.relay_key);
  if (hello.type === "hello") verifyAttestation(root, hello.attestation);
});

test("display-v1: the phone shows exactly what the Rust phone shows", () => {
  const v = load("display-v1.json");
  for (const c of v.escape) assert.equal(display.escape(c.input), c.output, JSON.stringify(c.input));
  for (const c of v.field) assert.equal(display.field(c.input, c.max), c.output, JSON.stringify(c.input));
  for (const c of v.media_type) {
    if (c.output === null) assert.throws(() => display.mediaType(c.input), Failure, c.input);
    else assert.equal(display.mediaType(c.input), c.output);
  }
  for (const c of v.origin) {
    let ok = true;
    try {
      display.origin(c.input);
    } catch {
      ok = false;
    }
    assert.equal(ok, c.valid, c.input);
  }
  for (const c of v.preview) assert.deepEqual(display.preview(utf8(c.input), c.width, c.max_lines), c.output, c.input);
  for (const c of v.type_mismatch) assert.equal(display.typeMismatch(c.media_type, h(c.data)), c.warning, c.data);
  for (const c of v.documents) {
    const refused = (raw: boolean) => {
      try {
        purpose.checkDocument(h(c.data), raw);
        return false;
      } catch (e) {
        assert.ok(e instanceof Failure && e.code === "refused_by_policy");
        return true;
      }
    };
    assert.equal(refused(false), c.cms_refused, c.what);
    assert.equal(refused(true), c.raw_refused, c.what);
    assert.equal(purpose.needsBlindConfirmation(h(c.data)), c.raw_needs_blind_confirmation, c.what);
  }
});

/** A phone action as the Rust vector generator writes it (kalit-core tests/vectors.rs, phone_action). */
function actionJson(a: PhoneAction): Json {
  switch (a.kind) {
    case "send":
      return { send: toHex(a.frame) };
    case "network":
      return { network: { computer_address: a.computerAddress, same_network: a.sameNetwork } };
    case "connected":
      return { connected: { sas: a.sas } };
    case "prompt": {
      const p = a.prompt;
      return {
        prompt: {
          id: p.id,
          origin: p.origin,
          name: p.name,
          media_type: p.mediaType,
          data: toHex(p.data),
          size: p.size,
          format: p.format,
          pss: p.pss,
          sha256: p.sha256,
          blind: p.blind,
          unchecked: p.unchecked,
          digests: p.digests
            ? { sha256: toHex(p.digests.sha256), sha512: toHex(p.digests.sha512), computed_here: p.digests.computedHere }
            : null,
          type_warning: p.typeWarning,
        },
      };
    }
    case "refused":
      return { refused: { id: a.id, error: a.failure.code } };
    case "withdrawn":
      return { withdrawn: { id: a.id, prompted: a.prompted } };
    case "ended":
      return { ended: a.reason };
    case "closed":
      return { closed: a.failure ? a.failure.code : null };
  }
}

function decision(d: Json): PhoneAnswer {
  if (d === "declined") return { kind: "declined" };
  if (d.approved !== undefined) return { kind: "approved", signature: h(d.approved) };
  return { kind: "failed", failure: new Failure(d.failed, d.message) };
}

test("flow-v2: the phone's state machine takes every input of the Rust session and does the same", () => {
  const v = load("flow-v2.json");
  const i = v.inputs;
  const phone = new PhoneSession(i.qr_text, i.now, {
    relayId: i.relay_id,
    relayPublicKey: h(i.relay_public),
    login: i.login,
    deviceId: i.device_id,
    chain: (i.chain as string[]).map(h),
    documents: i.documents,
  });
  phone.dangerFixEphemeral(h(i.phone_ephemeral_private));
  let steps = 0;
  for (const [n, step] of (v.steps as Json[]).entries()) {
    if (step.side !== "phone") continue;
    steps++;
    const input = step.input;
    let actions: Json[];
    if (input.event) actions = phone.onEvent(parseTunnelEvent(JSON.stringify(input.event))).map(actionJson);
    else if (input.frame) actions = phone.onFrame(h(input.frame)).map(actionJson);
    else if (input.answer) {
      try {
        actions = phone.answer(input.answer.id, decision(input.answer.decision)).map(actionJson);
      } catch (e) {
        assert.ok(e instanceof Failure);
        actions = [{ answer_refused: e.code }];
      }
    } else throw new Error(`step ${n}: an input this test does not know: ${JSON.stringify(input)}`);
    assert.deepEqual(actions, step.actions, `step ${n}`);
  }
  assert.ok(steps >= 10, "the vector drives the phone");
  assert.ok(phone.closed);
});

/** An agent action as the Rust vector generator writes it (kalit-core tests/vectors.rs, agent_action). */
function agentActionJson(a: AgentAction): Json {
  switch (a.kind) {
    case "send":
      return { send: toHex(a.frame) };
    case "paired":
      return { paired: { sas: a.paired.sas, login: a.paired.login, chain: a.paired.chain.map(toHex) } };
    case "answer":
      return a.failure ? { answer: { id: a.id, error: a.failure.code } } : { answer: { id: a.id, signature: toHex(a.signature!) } };
    case "lateAnswerRefused":
      return { late_answer_refused: a.id };
    case "closed":
      return { closed: a.failure ? a.failure.code : null };
  }
}

test("flow-v2: the computer's state machine (kalit.js direct mode) takes every input of the Rust agent and does the same", () => {
  const v = load("flow-v2.json");
  const i = v.inputs;
  const agent = new AgentSession(Qr.parse(i.qr_text), h(i.computer_private), { relayId: i.relay_id, relayPublicKey: h(i.relay_public) });
  agent.dangerFixEphemeral(h(i.agent_ephemeral_private));
  let steps = 0;
  for (const [n, step] of (v.steps as Json[]).entries()) {
    if (step.side !== "agent") continue;
    steps++;
    const input = step.input;
    let actions: Json[];
    if (input.event) actions = agent.onEvent(parseTunnelEvent(JSON.stringify(input.event))).map(agentActionJson);
    else if (input.frame) actions = agent.onFrame(h(input.frame), i.now).map(agentActionJson);
    else if (input.sign) {
      const d = input.sign;
      const digest = d.digest ? { size: d.digest.size, sha256: h(d.digest.sha256), sha512: h(d.digest.sha512) } : undefined;
      actions = agent
        .sign({ data: h(d.data), name: d.name, mediaType: d.media_type, format: d.format, pss: d.pss, ...(digest ? { digest } : {}) })
        .actions.map(agentActionJson);
    } else if (input.inject) actions = agent.dangerSeal(parseChannelMessage(JSON.stringify(input.inject))).map(agentActionJson); else if (input.withdraw !== undefined) actions = agent.withdraw(input.withdraw).map(agentActionJson);
    else if (input.end !== undefined) actions = agent.end(input.end).map(agentActionJson);
    else throw new Error(`step ${n}: an input this test does not know: ${JSON.stringify(input)}`);
    assert.deepEqual(actions, step.actions, `step ${n}`);
  }
  assert.ok(steps >= 10, "the vector drives the agent");
  assert.equal(agent.phase, "closed");
});

test("flow-v2: QRs and relays the phone refuses before anything happens", () => {
  const v = load("flow-v2.json");
  const i = v.inputs;
  const cfg = { relayId: i.relay_id, relayPublicKey: h(i.relay_public), login: i.login, deviceId: i.device_id, chain: [h(i.chain[0])] };
  const code = (f: () => unknown) => {
    try {
      f();
    } catch (e) {
      return e instanceof Failure ? e.code : "not a failure";
    }
    return "accepted";
  };
  assert.equal(code(() => new PhoneSession(i.qr_text, i.now + 3600, cfg)), "expired");
  assert.equal(code(() => new PhoneSession(i.qr_text, i.now - 3600, cfg)), "invalid_input");
  assert.equal(code(() => new PhoneSession(i.qr_text, i.now, { ...cfg, relayId: "another" })), "not_found");
  assert.equal(code(() => new PhoneSession(i.qr_text, i.now, { ...cfg, chain: [] })), "not_found");
  for (const bad of ["https://evil.example", "kalit:!!!", "kalit:eyJ2Ijo5fQ", i.qr_text.slice(0, 40), `kalit:${"A".repeat(2000)}`]) {
    assert.equal(code(() => new PhoneSession(bad, i.now, cfg)), "invalid_input", bad.slice(0, 30));
  }
  // An attestation signed by someone else than the pinned relay key.
  const p = new PhoneSession(i.qr_text, i.now, { ...cfg, relayPublicKey: ed25519.getPublicKey(new Uint8Array(32).fill(9)) });
  const joined = (v.steps as Json[]).find((s) => s.input.event?.event === "joined").input.event;
  assert.deepEqual(p.onEvent(parseTunnelEvent(JSON.stringify(joined))).map(actionJson), [{ closed: "unavailable" }]);
});

test("vault-v1: Argon2id, AES-256-GCM with the header as associated data, and a whole backup", async () => {
  const v = load("vault-v1.json");
  const key = await deriveKey(v.kdf.params, v.kdf.secret, h(v.kdf.salt));
  assert.equal(toHex(key), v.kdf.key);
  const box = await seal(h(v.aead.key), h(v.aead.aad), h(v.aead.plaintext), h(v.aead.nonce));
  assert.equal(toHex(Uint8Array.from(Buffer.from(box.ciphertext, "base64"))), v.aead.ciphertext_and_tag);
  assert.equal(toHex((await open(h(v.aead.key), h(v.aead.aad), box))!), v.aead.plaintext);
  const otherAad = h(v.aead.aad);
  otherAad[0]! ^= 1;
  assert.equal(await open(h(v.aead.key), otherAad, box), null);

  const contents = await openBackup(utf8(v.backup.file), v.backup.passphrase);
  assert.equal(contents.keys.length, v.backup.keys.length);
  for (const [n, k] of contents.keys.entries()) {
    const want = v.backup.keys[n];
    assert.equal(k.label, want.label);
    // An Ed25519 PKCS#8 v1 is a fixed 16-byte prefix and the 32-byte seed.
    const pkcs8 = Uint8Array.from(Buffer.from(k.pkcs8, "base64"));
    assert.equal(toHex(pkcs8.subarray(0, 16)), "302e020100300506032b657004220420");
    assert.equal(toHex(ed25519.getPublicKey(pkcs8.subarray(16))), want.public_key);
  }
  await assert.rejects(openBackup(utf8(v.backup.file), "wrong passphrase"), (e: unknown) => e instanceof Failure && e.code === "wrong_password");
});
