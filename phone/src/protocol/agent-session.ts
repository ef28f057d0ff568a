// The computer's side of a signing session as a state machine (kalit_core::flow::AgentSession), for a
// web page that plays the agent's part itself (kalit.js direct mode). Events in, actions out; no I/O, no
// clock and no randomness inside (the QR's keys, the time and, for vectors, the ephemeral key come from
// the caller). The committed flow vectors hold it to the Rust agent byte for byte.
//
//   waiting --peer--> handshake --msg1/msg2--> hello --hello checked--> connected --end/fail/bye--> closed

import { b64 } from "./bytes.js";
import { certFingerprint, normalizeLogin } from "./ceremony.js";
import { Channel, DOCUMENT_PART, MAX_DOCUMENT, PREVIEW_LEN, effectiveDocuments, goodbyeFrames, sealFrames } from "./channel.js";
import * as display from "./display.js";
import { ERROR_CODES as ERROR_NAMES, type ErrorCode, Failure } from "./errors.js";
import { NKpsk0Responder } from "./noise.js";
import { CLOCK_SKEW_SECS, type Qr } from "./qr.js";
import { b64Field, verifyAttestation } from "./statement.js";
import type { ChannelMessage, DocFormat, DocumentSupport, SignAnswer, TunnelEvent } from "./wire.js";
import { FORMATS_BEFORE_LISTING, formatsSigned } from "./wire.js";

/** The largest CMS (or raw signature) taken from a phone (kalit_core::cms::MAX_CMS_LEN). */
export const MAX_SIGNATURE = 1 << 20;
const MAX_CERTIFICATE = 16 * 1024;
const MAX_CHAIN = 8;
const WITHDRAWN_KEPT = 64;

export interface AgentConfig {
  relayId: string;
  /** The relay's raw Ed25519 key (pinned). */
  relayPublicKey: Uint8Array;
}

export interface SignDoc {
  /** The document; with `digest`, at least its first PREVIEW_LEN bytes. */
  data: Uint8Array;
  name: string;
  mediaType: string;
  format: DocFormat;
  pss: boolean;
  /** A document too large to travel whole to this phone (CMS only): its length and digests. */
  digest?: DocDigest;
}

/** The length and digests of a document that does not travel (kalit_core::flow::DocDigest). */
export interface DocDigest {
  size: number;
  sha256: Uint8Array;
  sha512: Uint8Array;
}

export interface Paired {
  sas: string;
  login: string;
  /** Leaf first, DER. */
  chain: Uint8Array[];
  /** Documents larger than MAX_DOCUMENT the phone takes (its hello's offer). */
  documents: DocumentSupport | null;
  /** The formats the phone signs (its hello's list, or raw and CMS for a phone that lists none). */
  formats: readonly DocFormat[];
}

export type AgentAction =
  | { kind: "send"; frame: Uint8Array }
  | { kind: "paired"; paired: Paired }
  | { kind: "answer"; id: number; signature: Uint8Array | null; failure: Failure | null }
  | { kind: "lateAnswerRefused"; id: number }
  | { kind: "closed"; failure: Failure | null };

type Phase =
  | { p: "waiting" }
  | { p: "handshake"; login: string; deviceId: string }
  | { p: "hello"; login: string; deviceId: string }
  | { p: "connected" }
  | { p: "closed" };

/** Answers that leave the session usable (kalit_core::flow::answer_keeps_session). */
export function answerKeepsSession(code: ErrorCode): boolean {
  return ["declined", "refused_by_policy", "wrong_pin", "try_later", "invalid_input"].includes(code);
}

export class AgentSession {
  readonly qr: Qr;
  #static: Uint8Array | null;
  #ephemeral: Uint8Array | undefined;
  #config: AgentConfig;
  #phase: Phase = { p: "waiting" };
  #channel: Channel | null = null;
  #paired: Paired | null = null;
  #lastId = 0;
  #pending: number | null = null;
  /** A document on its way in parts: its request and the bytes sent so far. */
  #streaming: { id: number; sent: number } | null = null;
  #withdrawn: number[] = [];

  /** `staticPrivate`: the X25519 key whose public half is the QR's `pk`. */
  constructor(qr: Qr, staticPrivate: Uint8Array, config: AgentConfig) {
    this.qr = qr;
    this.#static = staticPrivate.slice();
    this.#config = config;
  }

  /** Fixes the ephemeral key: for the conformance vectors only. */
  dangerFixEphemeral(e: Uint8Array): void {
    this.#ephemeral = e.slice();
  }

  get phase(): "waiting" | "pairing" | "connected" | "closed" {
    const p = this.#phase.p;
    return p === "handshake" || p === "hello" ? "pairing" : p;
  }

  get paired(): Paired | null {
    return this.#paired;
  }

  get pending(): number | null {
    return this.#pending;
  }

  onEvent(event: TunnelEvent): AgentAction[] {
    const phase = this.#phase;
    if (phase.p === "closed") return [];
    if (phase.p === "waiting" && event.event === "ready") return [];
    // The page took its side back after its tab was frozen (kalit.js direct mode): the channel goes on.
    if (event.event === "resumed" && (phase.p === "hello" || phase.p === "connected")) return [];
    if (phase.p === "waiting" && event.event === "peer") {
      this.#phase = { p: "handshake", login: event.login, deviceId: event.device_id };
      return [];
    }
    if (event.event === "error") {
      const code: ErrorCode = event.code === "unknown" ? "unavailable" : event.code;
      return this.#close(new Failure(code, `the relay ended the tunnel: ${display.field(event.message, 200)}`));
    }
    return this.#close(new Failure("unavailable", "the relay broke the tunnel protocol"));
  }

  /** A binary frame from the tunnel; `nowSecs` for the checks of the hello. */
  onFrame(frame: Uint8Array, nowSecs: number): AgentAction[] {
    const phase = this.#phase;
    this.#phase = { p: "closed" };
    switch (phase.p) {
      case "closed":
        return [];
      case "waiting":
        return this.#close(new Failure("unavailable", "the relay broke the tunnel protocol"));
      case "handshake": {
        const s = this.#static;
        this.#static = null;
        if (!s) return this.#close(new Failure("channel", "handshake state lost"));
        try {
          if (frame.length > 256) throw new Failure("channel", "handshake message too long");
          const hs = new NKpsk0Responder(new TextEncoder().encode(this.qr.text), s, this.qr.psk(), this.#ephemeral);
          hs.readMessage1(frame);
          const { message, transport } = hs.writeMessage2();
          this.#channel = new Channel(transport);
          this.#phase = { p: "hello", login: phase.login, deviceId: phase.deviceId };
          return [{ kind: "send", frame: message }];
        } catch (e) {
          return this.#close(channelFailure(e));
        } finally {
          s.fill(0);
        }
      }
      case "hello": {
        let m: ChannelMessage | null;
        try {
          m = this.#open(frame);
        } catch (e) {
          return this.#close(channelFailure(e));
        }
        this.#phase = phase;
        if (m === null) return [];
        try {
          const { login, chain } = checkHello(this.#config, m, phase.login, phase.deviceId, nowSecs);
          const documents = m.type === "hello" ? (m.documents ?? null) : null;
          const formats = formatsSigned(m.type === "hello" ? m.formats : undefined);
          const paired: Paired = { sas: this.#channel?.sas ?? "", login, chain, documents, formats };
          this.#paired = paired;
          this.#phase = { p: "connected" };
          return [{ kind: "paired", paired }];
        } catch (e) {
          return this.fail(e instanceof Failure ? e : new Failure("internal", String(e)));
        }
      }
      case "connected": {
        this.#phase = phase;
        let m: ChannelMessage | null;
        try {
          m = this.#open(frame);
        } catch (e) {
          return this.#close(channelFailure(e));
        }
        return m === null ? [] : this.#onMessage(m);
      }
    }
  }

  #open(frame: Uint8Array): ChannelMessage | null {
    if (!this.#channel) throw new Failure("channel", "no channel");
    return this.#channel.open(frame);
  }

  #onMessage(m: ChannelMessage): AgentAction[] {
    if (m.type === "sign_response") {
      const at = this.#withdrawn.indexOf(m.id);
      if (at >= 0) {
        this.#withdrawn.splice(at, 1);
        return [{ kind: "lateAnswerRefused", id: m.id }];
      }
      if (this.#pending !== m.id) return this.fail(new Failure("channel", "the phone answered another request"));
      this.#pending = null;
      const r = phoneAnswer(m);
      const out: AgentAction[] = [{ kind: "answer", id: m.id, ...r }];
      if (r.failure && !answerKeepsSession(r.failure.code)) out.push(...this.fail(r.failure));
      return out;
    }
    if (m.type === "bye") {
      const reason = display.field(m.reason, 300);
      const code: ErrorCode = m.code === null || m.code === "unknown" ? "declined" : m.code;
      return this.#close(new Failure(code, `the phone ended the session: ${reason}`));
    }
    return this.fail(new Failure("channel", "the phone sent a message out of turn"));
  }

  /** Sends a document to the phone; one request at a time. */
  sign(doc: SignDoc): { id: number; actions: AgentAction[] } {
    if (this.#phase.p === "closed") throw new Failure("expired", "the session ended");
    if (this.#phase.p !== "connected") throw new Failure("expired", "no phone connected yet");
    if (this.#pending !== null) throw new Failure("busy", "a signature is already waiting for approval in this session");
    const formats = this.#paired?.formats ?? FORMATS_BEFORE_LISTING;
    if (!formats.includes(doc.format)) {
      throw new Failure(
        "invalid_input",
        `the Kalit on this phone does not make ${doc.format} signatures (it makes ${formats.join(", ")}); update it, or ask for another format`,
      );
    }
    const id = this.#lastId + 1;
    if (id > 0xffffffff) throw new Failure("expired", "too many requests");
    const offer = effectiveDocuments(this.#paired?.documents);
    const mib = (n: number) => Math.ceil(n / (1024 * 1024));
    const origin = this.qr.payload.origin;
    const head = { id, origin, name: doc.name, media_type: doc.mediaType, format: doc.format, pss: doc.pss };
    let actions: AgentAction[];
    if (doc.digest) {
      if (doc.format === "raw") {
        throw new Failure(
          "too_large",
          "a raw signature is made over the whole document, which is too large to travel to the phone: ask for cms",
        );
      }
      if (!offer.digest) {
        throw new Failure(
          "too_large",
          `the document (${mib(doc.digest.size)} MiB) is larger than the Kalit on this phone takes (up to ${mib(offer.whole)} MiB), and it does not sign by digest; update it`,
        );
      }
      actions = this.#seal({
        type: "sign_digest",
        ...head,
        size: doc.digest.size,
        sha256: b64.encode(doc.digest.sha256),
        sha512: b64.encode(doc.digest.sha512),
        preview: b64.encode(doc.data.subarray(0, PREVIEW_LEN)),
      });
    } else if (doc.data.length > MAX_DOCUMENT) {
      const size = doc.data.length;
      if (size > offer.whole) {
        throw new Failure(
          "too_large",
          `the document (${mib(size)} MiB) is larger than the Kalit on this phone takes whole (up to ${mib(offer.whole)} MiB)`,
        );
      }
      // The parts follow from nextPart(), one at a time: sealed as they are sent.
      actions = this.#seal({ type: "sign_start", ...head, size });
      this.#streaming = { id, sent: 0 };
    } else {
      actions = this.#seal({ type: "sign_request", ...head, data: b64.encode(doc.data) });
    }
    this.#lastId = id;
    this.#pending = id;
    return { id, actions };
  }

  /** Whether a document is still on its way in parts (call nextPart). */
  get streaming(): boolean {
    return this.#streaming !== null;
  }

  /**
   * The next part of the document sign() started streaming (`doc` must be that document): its frames, or
   * nothing once all are sent, the request was withdrawn or the session ended.
   */
  nextPart(doc: SignDoc): AgentAction[] {
    const s = this.#streaming;
    if (s === null) return [];
    if (this.#pending !== s.id || this.#phase.p === "closed") {
      this.#streaming = null;
      return [];
    }
    const part = doc.data.subarray(s.sent, s.sent + DOCUMENT_PART);
    if (part.length === 0) {
      this.#streaming = null;
      return [];
    }
    const sent = s.sent + part.length;
    this.#streaming = sent < doc.data.length ? { id: s.id, sent } : null;
    try {
      return this.#seal({ type: "document_part", id: s.id, data: b64.encode(part) });
    } catch (e) {
      return this.fail(channelFailure(e));
    }
  }

  /** Seals any message as it is, past this side's rules: a lying computer, for the vectors and tests. */
  dangerSeal(m: ChannelMessage): AgentAction[] {
    return this.#seal(m);
  }

  /** The page withdrew the waiting request: the phone is told, and a late answer will be refused. */
  withdraw(reason: string): AgentAction[] {
    this.#streaming = null;
    const id = this.#pending;
    if (id === null) return [];
    this.#pending = null;
    if (this.#withdrawn.length === WITHDRAWN_KEPT) this.#withdrawn.shift();
    this.#withdrawn.push(id);
    try {
      return this.#seal({ type: "cancel", id, reason });
    } catch (e) {
      return this.#close(channelFailure(e));
    }
  }

  /** The page ends the session: a waiting request is withdrawn, then goodbye. */
  end(reason: string): AgentAction[] {
    if (this.#phase.p === "closed") return [];
    return [...this.withdraw(reason), ...this.#goodbye(reason, null)];
  }

  /** The session fails (a timer, a signature that does not check, a broken link). */
  fail(e: Failure): AgentAction[] {
    if (this.#phase.p === "closed") return [];
    return this.#goodbye(e.message, e);
  }

  #goodbye(reason: string, failure: Failure | null): AgentAction[] {
    return [...goodbyeFrames(this.#channel, reason, failure), ...this.#close(failure)];
  }

  #seal(m: ChannelMessage): AgentAction[] {
    return sealFrames(this.#channel, m);
  }

  #close(failure: Failure | null): AgentAction[] {
    this.#phase = { p: "closed" };
    this.#pending = null;
    this.#streaming = null;
    this.#static?.fill(0);
    this.#static = null;
    return [{ kind: "closed", failure }];
  }
}

/** The phone's answer as the page will see it (kalit_core::flow::agent::phone_answer). */
function phoneAnswer(a: SignAnswer): { signature: Uint8Array | null; failure: Failure | null } {
  switch (a.status) {
    case "approved":
      try {
        return { signature: b64Field("signature", a.signature, MAX_SIGNATURE), failure: null };
      } catch (e) {
        return { signature: null, failure: new Failure("invalid_signature", e instanceof Error ? e.message : String(e)) };
      }
    case "declined":
      return { signature: null, failure: new Failure("declined", "the person declined on the phone") };
    case "failed": {
      // The code the phone names reaches the page as itself (first phones of version 2 say it as
      // `code: message`); never internal or io from the other side.
      let code: ErrorCode | undefined = a.code;
      if (code === undefined) {
        const i = a.message.indexOf(":");
        const named = i > 0 ? a.message.slice(0, i).trim() : "";
        if (named !== "unknown" && (ERROR_NAMES as readonly string[]).includes(named)) code = named as ErrorCode;
      }
      if (code === undefined || code === "internal" || code === "io" || code === "unknown") code = "declined";
      return { signature: null, failure: new Failure(code, `the phone could not sign: ${display.field(a.message, 300)}`) };
    }
  }
}

/**
 * Checks the phone's hello (kalit_core::flow::agent::check_hello) without trust anchors: the relay's
 * signed, unexpired attestation binds this certificate to the login and the device the relay let in.
 */
export function checkHello(config: AgentConfig, m: ChannelMessage, peerLogin: string, peerDevice: string, nowSecs: number): { login: string; chain: Uint8Array[] } {
  if (m.type !== "hello") throw new Failure("channel", "the phone did not start with its hello");
  if (m.chain.length === 0 || m.chain.length > MAX_CHAIN) {
    throw new Failure("invalid_input", "the phone sent no certificate, or too many");
  }
  const chain = m.chain.map((c) => b64Field("certificate", c, MAX_CERTIFICATE));
  const unauthorized = (why: string) => new Failure("unauthorized", `the phone's attestation ${why}`);
  try {
    verifyAttestation(config.relayPublicKey, m.attestation);
  } catch {
    throw unauthorized("is not signed by the relay");
  }
  const a = m.attestation.attestation;
  const login = normalizeLogin(m.login);
  if (a.relay_id !== config.relayId) throw unauthorized("is for another relay");
  if (a.login !== login || a.login !== peerLogin) throw unauthorized("is for another login");
  if (a.cert_fingerprint !== certFingerprint(chain[0]!)) throw unauthorized("is for another certificate");
  if (a.device_id !== peerDevice) throw unauthorized("is for another device than the one the relay let in");
  if (nowSecs > a.expires_at + CLOCK_SKEW_SECS) throw unauthorized("has expired");
  if (a.issued_at > nowSecs + CLOCK_SKEW_SECS || a.expires_at < a.issued_at) throw unauthorized("has impossible times");
  return { login, chain };
}

function channelFailure(e: unknown): Failure {
  if (e instanceof Failure) return e;
  const message = e instanceof Error ? e.message : String(e);
  return new Failure("channel", `the secure channel failed (${message}): the QR, the relay or a frame was altered`);
}
