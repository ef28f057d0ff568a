// The phone's tunnel driver (src/phone/pair.ts) against a scripted relay: the join request waits for the
// relay's challenge and signs over its nonce; a relay that sends another event first, a malformed or a
// second challenge, ends the session with a clear failure; a relay that sends nothing (an older one) gets a
// join request over a nonce asked for the old way. The session's inputs are the flow-v2 vector's.

import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { test } from "node:test";

import { b64, fromHex } from "../src/protocol/bytes.js";
import { Failure } from "../src/protocol/errors.js";
import { PhoneSession } from "../src/protocol/phone-session.js";
import { JsonClient, Unreachable, originOf } from "../src/phone/http.js";
import { type PairUi, type WebSocketLike, drive } from "../src/phone/pair.js";

type Json = any; // eslint-disable-line @typescript-eslint/no-explicit-any

const VECTORS = new URL("../../../crates/kalit-core/vectors/", import.meta.url);
const flow: Json = JSON.parse(readFileSync(new URL("flow-v2.json", VECTORS), "utf8"));
const h = (s: string): Uint8Array => {
  const b = fromHex(s);
  assert.ok(b, `hex: ${s.slice(0, 20)}`);
  return b;
};

function session(): PhoneSession {
  const i = flow.inputs;
  const s = new PhoneSession(i.qr_text, i.now, {
    relayId: i.relay_id,
    relayPublicKey: h(i.relay_public),
    login: i.login,
    deviceId: i.device_id,
    chain: (i.chain as string[]).map(h),
    documents: i.documents,
  });
  s.dangerFixEphemeral(h(i.phone_ephemeral_private));
  return s;
}

/** The vector's `joined` event, as the relay sends it. */
const joined = JSON.stringify((flow.steps as Json[]).find((s) => s.input.event?.event === "joined").input.event);

/** A WebSocket whose other end is the test: `relay(text)` delivers a text frame, `sent` is what went out. */
class ScriptedSocket implements WebSocketLike {
  binaryType = "blob";
  readyState = 1;
  sent: (string | Uint8Array)[] = [];
  closed = false;
  #listeners = new Map<string, ((ev: { data?: unknown }) => void)[]>();
  send(data: string | Uint8Array): void {
    this.sent.push(data);
  }
  close(): void {
    this.closed = true;
  }
  addEventListener(type: string, listener: (ev: { data?: unknown }) => void): void {
    this.#listeners.set(type, [...(this.#listeners.get(type) ?? []), listener]);
  }
  relay(data: string): void {
    for (const l of this.#listeners.get("message") ?? []) l({ data });
  }
  open(): void {
    for (const l of this.#listeners.get("open") ?? []) l({});
  }
  hangUp(): void {
    for (const l of this.#listeners.get("close") ?? []) l({});
  }
  fail(): void {
    for (const l of this.#listeners.get("error") ?? []) l({});
  }
}

const ui: PairUi = { connected: () => {}, ask: async () => null, notice: () => {} };
const tick = () => new Promise((r) => setTimeout(r, 0));
const failureOf = async (p: Promise<unknown>): Promise<string> => {
  try {
    await p;
  } catch (e) {
    return e instanceof Failure ? `${e.code}: ${e.message}` : `not a failure: ${String(e)}`;
  }
  return "resolved";
};

test("the join request is signed over the nonce of the relay's challenge and sent before anything else", async () => {
  const ws = new ScriptedSocket();
  const nonce = new Uint8Array(32).fill(7);
  const asked: Uint8Array[] = [];
  let fellBack = 0;
  const done = drive(session(), ws, {
    join: async (n) => {
      asked.push(n);
      return `join over ${b64.encode(n)}`;
    },
    fallbackNonce: async () => {
      fellBack++;
      return new Uint8Array(32);
    },
    waitMs: 30,
  }, ui);
  ws.open();
  await tick();
  assert.deepEqual(ws.sent, [], "nothing is sent before the challenge");
  ws.relay(JSON.stringify({ event: "challenge", nonce: b64.encode(nonce), expires_at: 1 }));
  await tick();
  assert.deepEqual(asked, [nonce]);
  assert.deepEqual(ws.sent, [`join over ${b64.encode(nonce)}`]);
  // The relay's answer: the handshake's first message goes out.
  ws.relay(joined);
  assert.equal(ws.sent.length, 2);
  assert.ok(typeof ws.sent[1] !== "string", "the Noise handshake's first message, binary");
  // A second challenge is not the protocol.
  ws.relay(JSON.stringify({ event: "challenge", nonce: b64.encode(nonce), expires_at: 1 }));
  assert.match(await failureOf(done), /^unavailable: the relay broke the tunnel protocol/);
  assert.equal(asked.length, 1);
  assert.ok(ws.closed);
  await new Promise((r) => setTimeout(r, 60));
  assert.equal(fellBack, 0, "a relay that sent its challenge is not asked for a nonce");
});

test("a relay that skips the challenge, or sends a malformed one, ends the session; its error is shown as its own", async () => {
  const cases: [string, RegExp][] = [
    [joined, /^unavailable: the relay did not send the join's challenge first/],
    [JSON.stringify({ event: "challenge", nonce: b64.encode(new Uint8Array(16)), expires_at: 1 }), /^unavailable: the relay sent a malformed nonce/],
    [JSON.stringify({ event: "challenge", nonce: "not base64!", expires_at: 1 }), /^invalid_input: /],
    [JSON.stringify({ event: "challenge", expires_at: 1 }), /^channel: malformed relay event/],
    [JSON.stringify({ event: "error", code: "rate_limited", message: "slow down" }), /^rate_limited: the relay: slow down/],
  ];
  for (const [first, want] of cases) {
    const ws = new ScriptedSocket();
    let signed = 0;
    const done = drive(session(), ws, {
      join: async () => {
        signed++;
        return "join";
      },
    }, ui);
    ws.relay(first);
    assert.match(await failureOf(done), want, first.slice(0, 60));
    assert.equal(signed, 0, "nothing was signed");
    assert.deepEqual(ws.sent, [], "nothing was sent");
    assert.ok(ws.closed);
  }
  // The relay closes before its challenge.
  const ws = new ScriptedSocket();
  const done = drive(session(), ws, { join: async () => "join" }, ui);
  ws.open();
  ws.hangUp();
  assert.match(await failureOf(done), /^unavailable: the relay closed the tunnel/);
});

test("a relay that sends no challenge (an older one) gets a join request over a nonce asked for the old way", async () => {
  const ws = new ScriptedSocket();
  const asked = new Uint8Array(32).fill(9);
  const signedOver: Uint8Array[] = [];
  const done = drive(session(), ws, {
    join: async (n) => {
      signedOver.push(n);
      return "join over the asked nonce";
    },
    fallbackNonce: async () => asked,
    waitMs: 20,
  }, ui);
  ws.open();
  await tick();
  assert.deepEqual(ws.sent, [], "the phone waits a moment for the challenge first");
  await new Promise((r) => setTimeout(r, 60));
  assert.deepEqual(signedOver, [asked]);
  assert.deepEqual(ws.sent, ["join over the asked nonce"]);
  // A newer relay that was only slow: its challenge comes after the join request went out; it is passed over.
  ws.relay(JSON.stringify({ event: "challenge", nonce: b64.encode(new Uint8Array(32).fill(1)), expires_at: 1 }));
  await tick();
  assert.equal(signedOver.length, 1, "signed once");
  ws.relay(joined);
  assert.equal(ws.sent.length, 2, "the handshake's first message");
  ws.relay(JSON.stringify({ event: "challenge", nonce: b64.encode(asked), expires_at: 1 }));
  assert.match(await failureOf(done), /^unavailable: the relay broke the tunnel protocol/);

  // The old way fails too: its failure is the session's.
  const ws2 = new ScriptedSocket();
  const done2 = drive(session(), ws2, {
    join: async () => "join",
    fallbackNonce: async () => {
      throw new Failure("rate_limited", "the relay: slow down");
    },
    waitMs: 10,
  }, ui);
  ws2.open();
  assert.match(await failureOf(done2), /^rate_limited: the relay: slow down/);
  assert.deepEqual(ws2.sent, []);
  assert.ok(ws2.closed);
});

test("a relay that cannot be reached is named by its address, with what to do; a tunnel that breaks once open is not", async () => {
  // The socket fails before it opens (no network, a wrong address, the relay down), as a browser reports it:
  // an error, then a close.
  const ws = new ScriptedSocket();
  const done = drive(session(), ws, { join: async () => "join", relay: originOf("https://relay.example:8443/some/path") }, ui);
  ws.fail();
  ws.hangUp();
  const said = await failureOf(done);
  assert.equal(said, "unavailable: cannot reach the relay at https://relay.example:8443; check the network connection, then try again");
  const thrown = await done.catch((e: unknown) => e);
  assert.ok(thrown instanceof Unreachable, "the app tells it apart, to say it in the person's language");
  assert.deepEqual([thrown.service, thrown.address], ["relay", "https://relay.example:8443"]);
  assert.deepEqual(ws.sent, []);
  // Closed without an error before it opened: the same.
  const quiet = new ScriptedSocket();
  const done2 = drive(session(), quiet, { join: async () => "join", relay: "https://relay.example" }, ui);
  quiet.hangUp();
  assert.match(await failureOf(done2), /^unavailable: cannot reach the relay at https:\/\/relay\.example;/);
  // Once open, an error is a broken tunnel.
  const open = new ScriptedSocket();
  const done3 = drive(session(), open, { join: async () => "join", relay: "https://relay.example" }, ui);
  open.open();
  open.fail();
  assert.equal(await failureOf(done3), "unavailable: the tunnel broke");
  // The origin never carries a path (a tunnel's path names the session).
  assert.equal(originOf("http://127.0.0.1:9/v1/tunnel/abc/join?challenge=1"), "http://127.0.0.1:9");
  assert.equal(originOf("not a url"), "not a url");
});

test("a service that cannot be reached over HTTP is named by its origin, not by the browser's 'Failed to fetch'", async () => {
  const offline = (async () => {
    throw new TypeError("Failed to fetch");
  }) as unknown as typeof fetch;
  const ra = new JsonClient("https://ra.example/kalit/", "registration office", offline);
  const e = await ra.post("/v1/enrol", { code: "x" }).catch((x: unknown) => x);
  assert.ok(e instanceof Unreachable);
  assert.deepEqual([e.code, e.service, e.address], ["unavailable", "registration office", "https://ra.example"]);
  assert.equal(e.message, "cannot reach the registration office at https://ra.example; check the network connection, then try again");
  // A service that answers, with an error of its own, is not unreachable: its error is shown as its own.
  const refusing = (async () =>
    new Response(JSON.stringify({ error: { code: "rate_limited", message: "slow down" } }), { status: 429 })) as unknown as typeof fetch;
  const relay = new JsonClient("https://relay.example", "relay", refusing);
  const r = await relay.post("/v1/nonce").catch((x: unknown) => x);
  assert.ok(r instanceof Failure && !(r instanceof Unreachable));
  assert.deepEqual([r.code, r.message], ["rate_limited", "relay: slow down"]);
});
