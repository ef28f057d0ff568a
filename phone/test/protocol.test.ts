// The TypeScript protocol code on hostile and edge-case input (the vectors cover the well-formed paths).

import assert from "node:assert/strict";
import { test } from "node:test";

import { ed25519, ed25519ph, x25519 } from "@noble/curves/ed25519.js";
import { sha256, sha512 } from "@noble/hashes/sha2.js";

import { AgentSession } from "../src/protocol/agent-session.js";
import { b64, b64url, fromHex, fromUtf8, toHex, utf8 } from "../src/protocol/bytes.js";
import { checkNonce, checkRelayIdentity, keyId, normalizeLogin } from "../src/protocol/ceremony.js";
import { ecdsaRawToDer } from "../src/protocol/der.js";
import { Failure } from "../src/protocol/errors.js";
import { SigningKey, STATEMENT_CONTEXT, describePkcs8, generateDeviceKey } from "../src/protocol/keys.js";
import { DOCUMENT_PART, MAX_DOCUMENT, MAX_WHOLE_DOCUMENT, PREVIEW_LEN } from "../src/protocol/channel.js";
import { PhoneSession, type Prompt } from "../src/protocol/phone-session.js";
import { Qr } from "../src/protocol/qr.js";
import { statements } from "../src/protocol/statement.js";
import { type ChannelMessage, type DocFormat, type SignedOriginAttestation, parseChannelMessage, parseTunnelEvent, serializeChannelMessage } from "../src/protocol/wire.js";

const code = (f: () => unknown): string => {
  try {
    f();
  } catch (e) {
    return e instanceof Failure ? e.code : `not a failure: ${String(e)}`;
  }
  return "accepted";
};

test("base64 and hex accept only canonical text", () => {
  assert.equal(b64.encode(utf8("ab")), "YWI=");
  assert.deepEqual(b64.decode("YWI="), utf8("ab"));
  for (const bad of ["YWI", "YWJ=", "YW I=", "YWI==", "Y===", "YW-=", "====", "YWI=YWI="]) assert.equal(b64.decode(bad), null, bad);
  assert.deepEqual(b64.decode(""), new Uint8Array(0));
  assert.equal(b64url.encode(Uint8Array.of(0xfb, 0xff)), "-_8");
  assert.equal(b64url.decode("-_8="), null, "no padding in base64url");
  assert.equal(b64url.decode("-_9"), null, "non-zero trailing bits");
  assert.equal(fromHex("abc"), null);
  assert.equal(fromHex("zz"), null);
  assert.equal(toHex(fromHex("00ff")!), "00ff");
  assert.equal(fromUtf8(Uint8Array.of(0xc3, 0x28)), null);
  assert.equal(fromUtf8(Uint8Array.of(0xef, 0xbb, 0xbf, 0x61)), "\ufeffa", "a byte-order mark is kept");
});

test("hostile QR texts are refused with a clear code", () => {
  const payload = (o: Record<string, unknown>) => `kalit:${b64url.encode(utf8(JSON.stringify(o)))}`;
  const good = {
    v: 2,
    pk: b64url.encode(new Uint8Array(32).fill(1)),
    s: b64url.encode(new Uint8Array(16).fill(2)),
    relay: "https://relay.example",
    relay_id: "r1",
    origin: "https://portal.example",
    iat: 1_800_000_000,
    ttl: 60,
    op: "sign",
  };
  assert.equal(code(() => Qr.parse(payload(good))), "accepted");
  assert.equal(code(() => Qr.parse(`  ${payload(good)}\n`)), "accepted", "surrounding blanks are trimmed");
  const cases: [string, Record<string, unknown>][] = [
    ["unknown field", { ...good, extra: 1 }],
    ["missing field", { ...good, op: undefined }],
    ["short key", { ...good, pk: b64url.encode(new Uint8Array(31)) }],
    ["short secret", { ...good, s: b64url.encode(new Uint8Array(15)) }],
    ["other operation", { ...good, op: "login" }],
    ["no lifetime", { ...good, ttl: 0 }],
    ["long lifetime", { ...good, ttl: 301 }],
    ["empty origin", { ...good, origin: "" }],
    ["number as text", { ...good, iat: "1800000000" }],
    ["negative time", { ...good, iat: -1 }],
    ["other version", { ...good, v: 3 }],
  ];
  for (const [what, o] of cases) assert.equal(code(() => Qr.parse(payload(o))), "invalid_input", what);
  for (const bad of ["", "kalit:", "kalit:%%%", "KALIT:abc", "https://evil.example/#kalit:x", `kalit:${b64url.encode(utf8("[1,2]"))}`]) {
    assert.equal(code(() => Qr.parse(bad)), "invalid_input", bad);
  }
  assert.match(String((() => { try { Qr.parse(payload({ ...good, v: 9 })); } catch (e) { return (e as Error).message; } return ""; })()), /version 9/);
});

test("peer messages: unknown fields tolerated, unknown types and wrong types refused", () => {
  const m = parseChannelMessage('{"type":"cancel","id":3,"reason":"gone","new_field":true}');
  assert.deepEqual(m, { type: "cancel", id: 3, reason: "gone" });
  const bye = parseChannelMessage('{"type":"bye","reason":"x","code":"a_code_from_the_future"}');
  assert.deepEqual(bye, { type: "bye", reason: "x", code: "unknown" });
  assert.equal(serializeChannelMessage({ type: "bye", reason: "r", code: null }), '{"type":"bye","reason":"r","code":null}');
  for (const bad of [
    "not json",
    "[]",
    '{"type":"teleport"}',
    '{"type":"cancel","id":-1,"reason":"x"}',
    '{"type":"cancel","id":4294967296,"reason":"x"}',
    '{"type":"cancel","id":1.5,"reason":"x"}',
    '{"type":"sign_request","id":1,"origin":"o","name":"n","media_type":"t/x","data":"","format":"pdf","pss":false}',
    '{"type":"sign_response","id":1,"status":"maybe"}',
  ]) {
    assert.equal(code(() => parseChannelMessage(bad)), "channel", bad);
  }
  assert.equal(code(() => parseTunnelEvent('{"event":"teleported"}')), "unavailable");
  assert.deepEqual(parseTunnelEvent('{"event":"error","code":"rate_limited","message":"slow down","x":1}'), {
    event: "error",
    code: "rate_limited",
    message: "slow down",
  });
});

test("relay identity, nonce and login checks", () => {
  const pk = ed25519.getPublicKey(new Uint8Array(32).fill(5));
  const ident = { version: 1, relay_id: keyId(pk), public_key: b64.encode(pk), name: "relay" };
  assert.deepEqual(checkRelayIdentity(ident), pk);
  assert.equal(code(() => checkRelayIdentity({ ...ident, relay_id: "0".repeat(32) })), "unavailable");
  assert.equal(code(() => checkRelayIdentity({ ...ident, public_key: "!!" })), "invalid_input");
  assert.equal(checkNonce(b64.encode(new Uint8Array(32))).length, 32);
  assert.equal(code(() => checkNonce(b64.encode(new Uint8Array(16)))), "unavailable");
  assert.equal(normalizeLogin("  Ali.Valiyev@Example "), "ali.valiyev@example");
  for (const bad of ["ab", "-ali", "алишер", "a".repeat(65), "ali valiyev"]) assert.equal(code(() => normalizeLogin(bad)), "invalid_input", bad);
});

test("keys: PKCS#8 kinds, document and statement signatures that verify, and only for their purpose", async () => {
  // Ed25519 from a fixed seed: the document signature is plain Ed25519, the statement Ed25519ph.
  const seed = new Uint8Array(32).fill(7);
  const pkcs8 = Uint8Array.from([...fromHex("302e020100300506032b657004220420")!, ...seed]);
  assert.equal(describePkcs8(pkcs8).alg, "ed25519");
  const ed = SigningKey.fromPkcs8(pkcs8);
  const pub = ed25519.getPublicKey(seed);
  const doc = utf8("a document") as Uint8Array<ArrayBuffer>;
  const d = await ed.signDocument(doc, false);
  assert.equal(d.scheme, "ed25519");
  assert.ok(ed25519.verify(d.signature, doc, pub));
  const st = statements.register("r1", new Uint8Array(32), "ali", new Uint8Array(32), "fp");
  const s = await ed.signStatement(st.bytes);
  assert.ok(ed25519ph.verify(s, st.bytes, pub, { context: utf8(STATEMENT_CONTEXT) }));
  assert.ok(!ed25519.verify(s, st.bytes, pub), "a statement signature is not a document signature");
  await assert.rejects(ed.signStatement(doc), (e: unknown) => e instanceof Failure && e.code === "refused_by_policy");
  await assert.rejects(ed.signDocument(doc, true), (e: unknown) => e instanceof Failure && e.code === "invalid_input");

  // P-256 and RSA from WebCrypto: the signatures verify with WebCrypto's own verify (DER converted back).
  for (const alg of [
    { gen: { name: "ECDSA", namedCurve: "P-256" }, kind: "p-256" },
    { gen: { name: "RSASSA-PKCS1-v1_5", modulusLength: 2048, publicExponent: Uint8Array.of(1, 0, 1), hash: "SHA-256" }, kind: "rsa" },
  ] as const) {
    const pair = (await crypto.subtle.generateKey(alg.gen, true, ["sign", "verify"])) as CryptoKeyPair;
    const p8 = new Uint8Array(await crypto.subtle.exportKey("pkcs8", pair.privateKey));
    assert.equal(describePkcs8(p8).alg, alg.kind);
    const k = SigningKey.fromPkcs8(p8);
    const sig = await k.signDocument(doc, false);
    const spki = await crypto.subtle.exportKey("spki", pair.publicKey);
    if (alg.kind === "p-256") {
      assert.equal(sig.signature[0], 0x30, "DER");
      const v = await crypto.subtle.importKey("spki", spki, { name: "ECDSA", namedCurve: "P-256" }, false, ["verify"]);
      const raw = derToRaw(sig.signature);
      assert.ok(await crypto.subtle.verify({ name: "ECDSA", hash: "SHA-256" }, v, raw, doc));
    } else {
      const v = await crypto.subtle.importKey("spki", spki, { name: "RSASSA-PKCS1-v1_5", hash: "SHA-256" }, false, ["verify"]);
      assert.ok(await crypto.subtle.verify("RSASSA-PKCS1-v1_5", v, sig.signature as Uint8Array<ArrayBuffer>, doc));
    }
  }
  assert.equal(code(() => describePkcs8(utf8("not a key"))), "invalid_input");
  assert.equal(code(() => describePkcs8(new Uint8Array(0))), "invalid_input");
});

test("device keys are non-extractable and never sign a certificate statement", async () => {
  const { pair, device } = await generateDeviceKey();
  assert.equal(pair.privateKey.extractable, false);
  await assert.rejects(crypto.subtle.exportKey("pkcs8", pair.privateKey));
  const st = statements.deviceRequest("r1", new Uint8Array(32), "ali", keyId(device.publicKey), "tunnel-join", "t");
  const sig = await device.sign(st.bytes);
  assert.ok(ed25519.verify(sig, st.bytes, device.publicKey));
  const reg = statements.register("r1", new Uint8Array(32), "ali", device.publicKey, "fp");
  await assert.rejects(device.sign(reg.bytes), (e: unknown) => e instanceof Failure && e.code === "refused_by_policy");
});

test("ECDSA r||s to DER: leading zeros stripped, high bits padded", () => {
  const raw = new Uint8Array(64);
  raw[31] = 1;
  raw[32] = 0x80;
  assert.equal(toHex(ecdsaRawToDer(raw)), `3026020101022100${"80"}${"00".repeat(31)}`);
});

function derToRaw(der: Uint8Array): Uint8Array<ArrayBuffer> {
  // SEQUENCE { INTEGER r, INTEGER s } -> r||s of 32 bytes each.
  const out = new Uint8Array(64);
  let i = 2;
  for (let part = 0; part < 2; part++) {
    const len = der[i + 1]!;
    let v = der.subarray(i + 2, i + 2 + len);
    while (v.length > 32 && v[0] === 0) v = v.subarray(1);
    out.set(v, part * 32 + (32 - v.length));
    i += 2 + len;
  }
  return out;
}

test("enrolment links: only https (or loopback http) offices, the right shape, nothing else", async () => {
  const { parseEnrolment } = await import("../src/app/links.js");
  const link = (o: unknown) => `kalit-enrol:${b64url.encode(utf8(JSON.stringify(o)))}`;
  assert.deepEqual(parseEnrolment(link({ v: 1, ra: "https://ra.example/", code: "ABCD-EFGH" })), { ra: "https://ra.example", code: "ABCD-EFGH" });
  assert.deepEqual(parseEnrolment(link({ v: 1, ra: "http://127.0.0.1:8740", code: "X" }))?.ra, "http://127.0.0.1:8740");
  for (const bad of [
    link({ v: 1, ra: "http://ra.example", code: "X" }),
    link({ v: 1, ra: "javascript:alert(1)", code: "X" }),
    link({ v: 1, ra: "https://user:pw@ra.example", code: "X" }),
    link({ v: 2, ra: "https://ra.example", code: "X" }),
    link({ v: 1, ra: "https://ra.example", code: "X".repeat(65) }),
    link({ v: 1, ra: "https://ra.example" }),
    "kalit-enrol:!!!",
    "kalit:abc",
    `kalit-enrol:${"A".repeat(3000)}`,
  ]) {
    assert.equal(parseEnrolment(bad), null, bad.slice(0, 60));
  }
});

/** A page's session (direct mode) and a phone, both in TypeScript, joined by a relay whose key is `relay`. */
function directWorld(
  qrOrigin: string,
  statementOrigin: string | null,
  opts: { relaySeed?: number; tunnel?: string; issuedAt?: number; documents?: { whole: number; digest: boolean }; formats?: DocFormat[] } = {},
) {
  const relaySeed = new Uint8Array(32).fill(150);
  const relayPub = ed25519.getPublicKey(relaySeed);
  const relayId = keyId(relayPub);
  const pageKey = x25519.utils.randomSecretKey();
  const now = 1_800_000_000;
  const qr = Qr.forPage({
    publicKey: x25519.getPublicKey(pageKey),
    secret: new Uint8Array(16).fill(3),
    relay: "https://relay.example/",
    relayId,
    origin: qrOrigin,
    ttl: 60,
    nowSecs: now,
  });
  assert.equal(qr.payload.mode, "direct");
  assert.equal(qr.payload.relay, "https://relay.example");
  const page = new AgentSession(qr, pageKey, { relayId, relayPublicKey: relayPub });
  // A registered phone: a device key, a certificate (any bytes: the page has no anchors), the relay's attestation.
  const cert = utf8("a certificate");
  const att = {
    relay_id: relayId,
    login: "ali",
    cert_fingerprint: toHex(sha256(cert)),
    device_id: "d1",
    device_key: b64.encode(new Uint8Array(32).fill(7)),
    issued_at: now,
    expires_at: now + 600,
  };
  const attestation = { attestation: att, signature: b64.encode(ed25519.sign(statements.attestation(att).bytes, relaySeed)) };
  const phone = new PhoneSession(qr.text, now, {
    relayId,
    relayPublicKey: relayPub,
    login: "ali",
    deviceId: "d1",
    chain: [cert],
    ...(opts.documents ? { documents: opts.documents } : {}),
    ...(opts.formats ? { formats: opts.formats } : {}),
  });
  let origin: SignedOriginAttestation | undefined;
  if (statementOrigin !== null) {
    const o = { relay_id: relayId, tunnel: opts.tunnel ?? qr.tunnelId(), origin: statementOrigin, issued_at: opts.issuedAt ?? now, expires_at: (opts.issuedAt ?? now) + 600 };
    const signer = opts.relaySeed === undefined ? relaySeed : new Uint8Array(32).fill(opts.relaySeed);
    origin = { attestation: o, signature: b64.encode(ed25519.sign(statements.origin(o).bytes, signer)) };
  }
  const joined = parseTunnelEvent(JSON.stringify({ event: "joined", attestation, computer_address: "192.0.2.1", same_network: false, origin }));
  return { page, phone, joined, now };
}

const sends = (actions: ({ kind: "send"; frame: Uint8Array } | { kind: string })[]) =>
  actions.flatMap((a) => ("frame" in a && a.kind === "send" ? [a.frame] : []));

test("direct mode: a page and a phone pair through the relay's statement of the page's origin, and sign", () => {
  const w = directWorld("https://portal.example", "https://portal.example");
  assert.deepEqual(w.page.onEvent({ event: "ready", expires_in: 60 }), []);
  assert.deepEqual(w.page.onEvent({ event: "peer", login: "ali", device_id: "d1" }), []);
  const joined = w.phone.onEvent(w.joined);
  assert.deepEqual(joined[0], { kind: "originAttested", relayId: keyId(ed25519.getPublicKey(new Uint8Array(32).fill(150))) });
  const msg2 = sends(w.page.onFrame(sends(joined)[0]!, w.now));
  const connected = w.phone.onFrame(msg2[0]!);
  assert.equal(connected[0]!.kind, "connected");
  const paired = sends(connected).flatMap((f) => w.page.onFrame(f, w.now));
  assert.equal(paired[0]!.kind, "paired");
  const { actions } = w.page.sign({ data: utf8("Ariza"), name: "a.txt", mediaType: "text/plain", format: "raw", pss: false });
  const prompt = sends(actions).flatMap((f) => w.phone.onFrame(f));
  assert.equal(prompt[0]!.kind, "prompt");
  const answer = sends(w.phone.answer(1, { kind: "approved", signature: utf8("sig") })).flatMap((f) => w.page.onFrame(f, w.now));
  assert.equal(answer[0]!.kind, "answer");
  assert.deepEqual((answer[0] as { signature: Uint8Array }).signature, utf8("sig"));
});

test("direct mode: a frame flipped or injected by a relay in the middle breaks the page's channel for good", () => {
  const w = directWorld("https://portal.example", "https://portal.example");
  w.page.onEvent({ event: "peer", login: "ali", device_id: "d1" });
  const msg2 = sends(w.page.onFrame(sends(w.phone.onEvent(w.joined))[0]!, w.now));
  const hello = sends(w.phone.onFrame(msg2[0]!));
  const flipped = hello[0]!.slice();
  flipped[flipped.length - 1]! ^= 1;
  const a = w.page.onFrame(flipped, w.now);
  assert.deepEqual(a.map((x) => x.kind), ["closed"]);
  assert.equal((a[0] as { failure: Failure }).failure.code, "channel");
  assert.deepEqual(w.page.onFrame(hello[0]!, w.now), [], "nothing after the channel broke");
  // An injected frame (the relay's own bytes) after pairing: the same.
  const v = directWorld("https://portal.example", "https://portal.example");
  v.page.onEvent({ event: "peer", login: "ali", device_id: "d1" });
  const m2 = sends(v.page.onFrame(sends(v.phone.onEvent(v.joined))[0]!, v.now));
  sends(v.phone.onFrame(m2[0]!)).forEach((f) => v.page.onFrame(f, v.now));
  assert.equal(v.page.phase, "connected");
  const b = v.page.onFrame(new Uint8Array(40).fill(7), v.now);
  assert.equal((b[0] as { failure: Failure }).failure.code, "channel");
  assert.equal(v.page.phase, "closed");
});

test("direct mode: a page that writes another origin into its QR, a forged or stale statement, or none, is refused before the handshake", () => {
  const closedWith = (w: ReturnType<typeof directWorld>) => {
    const a = w.phone.onEvent(w.joined);
    assert.equal(sends(a).length, 0, "nothing reaches the page");
    const c = a.find((x) => x.kind === "closed") as { failure: Failure | null } | undefined;
    return c?.failure?.code;
  };
  assert.equal(closedWith(directWorld("https://my.gov.example", "https://evil.example")), "refused_by_policy");
  assert.equal(closedWith(directWorld("https://my.gov.example", null)), "refused_by_policy");
  assert.equal(closedWith(directWorld("https://my.gov.example", "https://my.gov.example", { relaySeed: 9 })), "unavailable");
  assert.equal(closedWith(directWorld("https://my.gov.example", "https://my.gov.example", { tunnel: "ab".repeat(32) })), "unavailable");
  assert.equal(closedWith(directWorld("https://my.gov.example", "https://my.gov.example", { issuedAt: 1_700_000_000 })), "unavailable");
  // A QR with an unknown mode is not a Kalit QR this phone reads.
  const text = (o: object) => "kalit:" + b64url.encode(utf8(JSON.stringify(o)));
  const base = JSON.parse(fromUtf8(b64url.decode(directWorld("https://a.example", null).page.qr.text.slice(6))!)!);
  assert.equal(code(() => Qr.parse(text({ ...base, mode: "agent" }))), "invalid_input");
  assert.equal(code(() => Qr.parse(text({ ...base, mode: "direct" }))), "accepted");
});

/** A paired page and phone (TypeScript both) whose phone offers large documents. */
function pairedLarge(documents = { whole: MAX_WHOLE_DOCUMENT, digest: true }, formats?: DocFormat[]) {
  const w = directWorld("https://portal.example", "https://portal.example", { documents, ...(formats ? { formats } : {}) });
  w.page.onEvent({ event: "peer", login: "ali", device_id: "d1" });
  const msg2 = sends(w.page.onFrame(sends(w.phone.onEvent(w.joined))[0]!, w.now));
  const paired = sends(w.phone.onFrame(msg2[0]!)).flatMap((f) => w.page.onFrame(f, w.now));
  assert.equal(paired[0]!.kind, "paired");
  return w;
}

test("large documents: streamed in parts and hashed by the phone itself, or by the computer's digest with a warning", () => {
  const w = pairedLarge();
  const len = MAX_DOCUMENT + 2 * DOCUMENT_PART + 3;
  const data = new Uint8Array(len).map((_, i) => 65 + (i % 26));
  const doc = { data, name: "big.txt", mediaType: "text/plain", format: "cms" as const, pss: false };
  const { actions } = w.page.sign(doc);
  // The start goes first; each part is sealed when the driver asks for it.
  assert.equal(sends(actions).length, 1);
  const frames = sends(actions);
  while (w.page.streaming) frames.push(...sends(w.page.nextPart(doc)));
  assert.deepEqual(w.page.nextPart(doc), []);
  assert.deepEqual(frames.slice(0, -1).flatMap((f) => w.phone.onFrame(f)), [], "nothing is asked before the last part");
  const [a] = w.phone.onFrame(frames[frames.length - 1]!);
  assert.equal(a!.kind, "prompt");
  const p = (a as { prompt: Prompt }).prompt;
  assert.equal(p.size, len);
  assert.equal(p.unchecked, false);
  assert.equal(p.data.length, PREVIEW_LEN);
  assert.deepEqual(p.digests, { sha256: sha256(data), sha512: sha512(data), computedHere: true });
  assert.equal(sends(w.phone.answer(1, { kind: "declined" })).length, 1);
  // The digest path: never raw; a phone that does not offer it is never asked.
  const digest = { size: 200 * 1024 * 1024, sha256: new Uint8Array(32).fill(1), sha512: new Uint8Array(64).fill(2) };
  const v = pairedLarge();
  const signed = v.page.sign({ data: utf8("first bytes"), name: "huge.txt", mediaType: "text/plain", format: "cms", pss: false, digest });
  const [b] = sends(signed.actions).flatMap((f) => v.phone.onFrame(f));
  const q = (b as { prompt: Prompt }).prompt;
  assert.deepEqual([q.unchecked, q.size, q.digests?.computedHere, fromUtf8(q.data)], [true, digest.size, false, "first bytes"]);
  assert.equal(code(() => pairedLarge().page.sign({ data: utf8("x"), name: "x", mediaType: "text/plain", format: "raw", pss: false, digest })), "too_large");
  const noDigest = pairedLarge({ whole: MAX_WHOLE_DOCUMENT, digest: false });
  assert.equal(code(() => noDigest.page.sign({ data: utf8("x"), name: "x", mediaType: "text/plain", format: "cms", pss: false, digest })), "too_large");
});

test("large documents: the phone refuses a lying stream or digest, and a withdrawal mid-stream dismisses it", () => {
  const head = { origin: "https://portal.example", name: "x", media_type: "text/plain", pss: false };
  const start = (id: number, size: number): ChannelMessage => ({ type: "sign_start", id, ...head, format: "cms", size });
  const part = (id: number, bytes: string): ChannelMessage => ({ type: "document_part", id, data: b64.encode(utf8(bytes)) });
  const digest = (size: number, format: "raw" | "cms", shaLen: number): ChannelMessage => ({
    type: "sign_digest",
    id: 1,
    ...head,
    format,
    size,
    sha256: b64.encode(new Uint8Array(shaLen)),
    sha512: b64.encode(new Uint8Array(64)),
    preview: b64.encode(utf8("first bytes")),
  });
  const ends = (msgs: ChannelMessage[]) => {
    const w = pairedLarge();
    const out = msgs.flatMap((m) => sends(w.page.dangerSeal(m)).flatMap((f) => w.phone.onFrame(f)));
    assert.ok(!out.some((a) => a.kind === "prompt"), JSON.stringify(out.map((a) => a.kind)));
    const closed = out.find((a) => a.kind === "closed") as { failure: Failure | null } | undefined;
    return closed?.failure?.code ?? null;
  };
  assert.equal(ends([start(1, 3), part(1, "abcd")]), "channel");
  assert.equal(ends([start(1, 3), part(2, "abc")]), "channel");
  assert.equal(ends([part(1, "abc")]), "channel");
  assert.equal(ends([start(1, 3), part(1, "")]), "channel");
  assert.equal(ends([start(1, MAX_WHOLE_DOCUMENT + 1)]), "too_large");
  assert.equal(ends([start(1, 3), start(2, 3)]), "channel");
  assert.equal(ends([digest(MAX_WHOLE_DOCUMENT + 1, "raw", 32)]), "invalid_input");
  assert.equal(ends([digest(1000, "cms", 32)]), "invalid_input");
  assert.equal(ends([digest(MAX_WHOLE_DOCUMENT + 1, "cms", 20)]), "invalid_input");
  const w = pairedLarge();
  const feed = (m: ChannelMessage) => sends(w.page.dangerSeal(m)).flatMap((f) => w.phone.onFrame(f));
  assert.deepEqual(feed(start(1, 6)), []);
  assert.deepEqual(feed(part(1, "abc")), []);
  assert.deepEqual(feed({ type: "cancel", id: 1, reason: "gave up" }).map((a) => [a.kind, (a as { prompted?: boolean }).prompted]), [["withdrawn", false]]);
  assert.ok(w.phone.isWithdrawn(1));
  assert.deepEqual(feed(start(2, 3)), []);
  assert.equal((feed(part(2, "xyz"))[0] as { prompt: Prompt }).prompt.size, 3);
});

test("PDF signatures are asked only of a phone whose hello lists pades; names this version does not know are skipped", () => {
  const w = pairedLarge(undefined, ["raw", "cms", "pades"]);
  assert.deepEqual(w.page.paired?.formats, ["raw", "cms", "pades"]);
  const pdf = { data: utf8("%PDF-1.7 prepared"), name: "a.pdf", mediaType: "application/pdf", format: "pades" as const, pss: false };
  const [a] = sends(w.page.sign(pdf).actions).flatMap((f) => w.phone.onFrame(f));
  assert.equal(a!.kind, "prompt");
  assert.equal((a as { prompt: Prompt }).prompt.format, "pades");
  // The first phones list nothing: raw and CMS only, and the page never sends them a PDF.
  const old = pairedLarge();
  assert.deepEqual(old.page.paired?.formats, ["raw", "cms"]);
  assert.equal(code(() => old.page.sign(pdf)), "invalid_input");
  const hello = parseChannelMessage(JSON.stringify({
    type: "hello", login: "ali", device_name: "d1", chain: [], formats: ["raw", "pades", "a-future-format"],
    attestation: { attestation: { relay_id: "r", login: "ali", cert_fingerprint: "f", device_id: "d1", device_key: "k", issued_at: 1, expires_at: 2 }, signature: "s" },
  }));
  assert.deepEqual(hello.type === "hello" && hello.formats, ["raw", "pades"]);
});
