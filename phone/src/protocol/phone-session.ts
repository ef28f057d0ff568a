// The phone's side of a signing session as a state machine (kalit_core::flow::PhoneSession): events in,
// actions out; no I/O, no clock and no randomness inside (time and, for vectors, the ephemeral key come
// from the caller). Every rule of the Rust phone is here once for TypeScript, and the committed flow
// vectors hold both to the same bytes.

import { sha256, sha512 } from "@noble/hashes/sha2.js";

import { b64, toHex } from "./bytes.js";
import { Channel, DOCUMENT_PART, MAX_DOCUMENT, PREVIEW_LEN, effectiveDocuments, goodbyeFrames, sealFrames } from "./channel.js";
import * as display from "./display.js";
import { type ErrorCode, Failure } from "./errors.js";
import { NKpsk0Initiator } from "./noise.js";
import * as purpose from "./purpose.js";
import { Qr } from "./qr.js";
import { parseCertificate, spkiAlgorithm } from "./x509.js";
import { CLOCK_SKEW_SECS } from "./qr.js";
import { ACTION, type Statement, b64Field, statements, verifyAttestation, verifyOriginAttestation } from "./statement.js";
import type {
  ChannelMessage,
  DocFormat,
  DocumentSupport,
  SignedAttestation,
  SignedOriginAttestation,
  TunnelEvent,
} from "./wire.js";
import { formatsSigned } from "./wire.js";

export interface PhoneConfig {
  relayId: string;
  relayPublicKey: Uint8Array;
  login: string;
  deviceId: string;
  /** The signing certificate first, then its issuers (DER). */
  chain: Uint8Array[];
  /** Documents larger than MAX_DOCUMENT this phone takes, offered in its hello (absent: none). */
  documents?: DocumentSupport;
  /** The formats this phone signs, listed in its hello (absent: none listed, read as raw and CMS). */
  formats?: DocFormat[];
}

/** The digests of a document the phone does not hold whole. */
export interface Digests {
  sha256: Uint8Array;
  sha512: Uint8Array;
  /** Computed by the phone as the document streamed in (false: the computer's word, the digest path). */
  computedHere: boolean;
}

export interface Prompt {
  id: number;
  origin: string;
  name: string;
  mediaType: string;
  /** The document; with `digests`, only its first bytes (at most PREVIEW_LEN). */
  data: Uint8Array;
  /** The document's length in bytes. */
  size: number;
  /** Set when the phone does not hold the whole document: what the signature is made over. */
  digests: Digests | null;
  format: DocFormat;
  pss: boolean;
  sha256: string;
  /** A raw signature over bytes that are not text: the separate confirmation is needed. */
  blind: boolean;
  /** Only the computer's digests and the first bytes came (the digest path): the phone could not check the
   * rest, says so, and needs a separate confirmation. */
  unchecked: boolean;
  typeWarning: string | null;
}

/** A large document arriving in parts. */
interface Receiving {
  req: Request;
  received: number;
  h256: ReturnType<typeof sha256.create>;
  h512: ReturnType<typeof sha512.create> | null;
  /** The whole document (raw) or its first bytes (CMS: the digest is all the key needs). */
  kept: Uint8Array;
  keptLen: number;
}

/** A request to sign as #begin checked it (the media type normalised), whichever way its document travels. */
interface Request {
  id: number;
  origin: string;
  name: string;
  mediaType: string;
  format: DocFormat;
  pss: boolean;
  /** The document's length in bytes. */
  size: number;
}

export type PhoneAnswer =
  | { kind: "approved"; signature: Uint8Array }
  | { kind: "declined" }
  | { kind: "failed"; failure: Failure };

export type PhoneAction =
  | { kind: "send"; frame: Uint8Array }
  | { kind: "originAttested"; relayId: string }
  | { kind: "network"; computerAddress: string; sameNetwork: boolean }
  | { kind: "connected"; sas: string }
  | { kind: "prompt"; prompt: Prompt }
  | { kind: "refused"; id: number; origin: string; failure: Failure }
  | { kind: "withdrawn"; id: number; reason: string; prompted: boolean }
  | { kind: "ended"; reason: string }
  | { kind: "closed"; failure: Failure | null };

type Phase =
  | { p: "joining" }
  | { p: "handshake"; hs: NKpsk0Initiator }
  | { p: "ready" }
  | { p: "receiving"; r: Receiving }
  | { p: "prompting"; id: number }
  | { p: "closed" };

const WITHDRAWN_KEPT = 64;
const ED25519_OID = "1.3.101.112";

export class PhoneSession {
  readonly qr: Qr;
  #config: PhoneConfig;
  #ephemeral: Uint8Array | undefined;
  #phase: Phase = { p: "joining" };
  #channel: Channel | null = null;
  #attestation: SignedAttestation | null = null;
  #lastId = 0;
  #withdrawn: number[] = [];
  #started: number;
  /** Whether a CMS by this key carries a SHA-512 digest (Ed25519, RFC 8419; also when the leaf cannot be
   * read here): only then is a streamed document hashed twice. */
  #needsSha512: boolean;

  /** Reads and checks the QR (fresh at `nowSecs`, a web origin, this registration's relay). */
  constructor(qrText: string, nowSecs: number, config: PhoneConfig) {
    this.#started = nowSecs;
    const qr = Qr.parse(qrText);
    qr.checkFresh(nowSecs);
    display.origin(qr.payload.origin);
    if (qr.payload.relay_id !== config.relayId) {
      throw new Failure("not_found", "the QR names another relay than this registration");
    }
    if (config.chain.length === 0) throw new Failure("not_found", "this registration's key has no certificate");
    this.qr = qr;
    this.#config = config;
    let needs = true;
    try {
      needs = spkiAlgorithm(parseCertificate(config.chain[0]!).spki).oid === ED25519_OID;
    } catch {
      /* not readable here: compute both */
    }
    this.#needsSha512 = needs;
  }

  /** Fixes the ephemeral key: for the conformance vectors only. */
  dangerFixEphemeral(e: Uint8Array): void {
    this.#ephemeral = e.slice();
  }

  tunnelId(): string {
    return this.qr.tunnelId();
  }

  /** The device request that joins the tunnel (signed by the device key, sent to the relay). */
  joinStatement(nonce: Uint8Array): Statement {
    const c = this.#config;
    return statements.deviceRequest(c.relayId, nonce, c.login, c.deviceId, ACTION.TUNNEL_JOIN, this.tunnelId());
  }

  get closed(): boolean {
    return this.#phase.p === "closed";
  }

  isWithdrawn(id: number): boolean {
    return this.#withdrawn.includes(id);
  }

  onEvent(event: TunnelEvent): PhoneAction[] {
    if (this.#phase.p === "closed") return [];
    if (this.#phase.p === "joining" && event.event === "joined") {
      try {
        verifyAttestation(this.#config.relayPublicKey, event.attestation);
      } catch {
        return this.#close(new Failure("unavailable", "the relay's attestation does not verify with its pinned key"));
      }
      const a = event.attestation.attestation;
      if (a.device_id !== this.#config.deviceId || a.login !== this.#config.login) {
        return this.#close(new Failure("unavailable", "the relay's attestation is for another device or login"));
      }
      let vouched: string | null;
      try {
        vouched = this.#checkOrigin(event.origin);
      } catch (e) {
        return this.#close(asFailure(e));
      }
      this.#attestation = event.attestation;
      let hs: NKpsk0Initiator;
      let msg1: Uint8Array;
      try {
        hs = new NKpsk0Initiator(new TextEncoder().encode(this.qr.text), this.qr.agentPublic, this.qr.psk(), this.#ephemeral);
        msg1 = hs.writeMessage1();
      } catch (e) {
        return this.#close(asFailure(e));
      }
      this.#phase = { p: "handshake", hs };
      const out: PhoneAction[] = vouched === null ? [] : [{ kind: "originAttested", relayId: vouched }];
      out.push(
        { kind: "network", computerAddress: display.field(event.computer_address, 60), sameNetwork: event.same_network },
        { kind: "send", frame: msg1 },
      );
      return out;
    }
    if (event.event === "error") {
      const code: ErrorCode = event.code === "unknown" ? "unavailable" : event.code;
      return this.#close(new Failure(code, `the relay: ${display.field(event.message, 200)}`));
    }
    return this.#close(new Failure("unavailable", "the relay broke the tunnel protocol"));
  }

  /**
   * The relay's statement of the page's origin, when it sent one: signed with its pinned key, for this
   * relay and tunnel, fresh, and naming the QR's origin. A QR a page made itself (direct mode) needs one.
   * Returns the relay that vouches, or null (an agent's QR and no statement).
   */
  #checkOrigin(signed: SignedOriginAttestation | undefined): string | null {
    if (!signed) {
      if (this.qr.payload.mode === "direct") {
        throw new Failure(
          "refused_by_policy",
          "this QR comes from a web page, but the relay did not vouch for the page's origin; nothing was signed",
        );
      }
      return null;
    }
    const bad = (why: string) => new Failure("unavailable", `the relay's origin statement ${why}`);
    try {
      verifyOriginAttestation(this.#config.relayPublicKey, signed);
    } catch {
      throw bad("does not verify with its pinned key");
    }
    const a = signed.attestation;
    if (a.relay_id !== this.#config.relayId) throw bad("is for another relay");
    if (a.tunnel !== this.tunnelId()) throw bad("is for another session");
    const now = this.#started;
    if (now > a.expires_at + CLOCK_SKEW_SECS || a.issued_at > now + CLOCK_SKEW_SECS) throw bad("is not valid now");
    if (a.origin !== this.qr.payload.origin) {
      throw new Failure(
        "refused_by_policy",
        `the page that made this QR is ${display.field(a.origin, 120)}, but the QR claims ${display.field(this.qr.payload.origin, 120)}; nothing was signed`,
      );
    }
    return a.relay_id;
  }

  onFrame(frame: Uint8Array): PhoneAction[] {
    const phase = this.#phase;
    this.#phase = { p: "closed" };
    switch (phase.p) {
      case "closed":
        return [];
      case "joining":
        return this.#close(new Failure("unavailable", "the relay broke the tunnel protocol"));
      case "handshake": {
        let channel: Channel;
        try {
          if (frame.length > 256) throw new Failure("channel", "handshake message too long");
          channel = new Channel(phase.hs.readMessage2(frame).transport);
        } catch (e) {
          return this.#close(asFailure(e, true));
        }
        this.#channel = channel;
        this.#phase = { p: "ready" };
        const attestation = this.#attestation;
        if (!attestation) return this.#close(new Failure("channel", "no attestation"));
        const hello: ChannelMessage = {
          type: "hello",
          login: this.#config.login,
          device_name: this.#config.deviceId,
          chain: this.#config.chain.map((c) => b64.encode(c)),
          attestation,
          ...(this.#config.formats?.length ? { formats: this.#config.formats } : {}),
          ...(this.#config.documents ? { documents: this.#config.documents } : {}),
        };
        const out: PhoneAction[] = [{ kind: "connected", sas: channel.sas }];
        try {
          out.push(...this.#seal(hello));
        } catch (e) {
          out.push(...this.#close(asFailure(e)));
        }
        return out;
      }
      case "ready":
      case "receiving":
      case "prompting": {
        this.#phase = phase;
        let m: ChannelMessage | null;
        try {
          if (!this.#channel) throw new Failure("channel", "no channel");
          m = this.#channel.open(frame);
        } catch (e) {
          return this.#close(asFailure(e, true));
        }
        return m ? this.#onMessage(m) : [];
      }
    }
  }

  #onMessage(m: ChannelMessage): PhoneAction[] {
    switch (m.type) {
      case "sign_request": {
        const mediaType = this.#begin(m.id, m.origin, m.media_type);
        if (typeof mediaType !== "string") return mediaType;
        let data: Uint8Array;
        try {
          data = b64Field("document", m.data, MAX_DOCUMENT);
        } catch (e) {
          return this.fail(new Failure("invalid_input", `${asFailure(e).message}; nothing was signed`));
        }
        const req = { id: m.id, origin: m.origin, name: m.name, mediaType, format: m.format, pss: m.pss, size: data.length };
        return this.#ask(req, sha256(data), null, data);
      }
      case "sign_start": {
        const mediaType = this.#begin(m.id, m.origin, m.media_type);
        if (typeof mediaType !== "string") return mediaType;
        const whole = this.#config.documents?.whole ?? 0;
        if (m.size === 0 || m.size > whole) {
          return this.fail(new Failure("too_large", `the computer sent a document of ${m.size} bytes; this phone takes up to ${whole} whole`));
        }
        // CMS needs only the digest: the phone keeps the first bytes for the screen. A raw signature is over
        // the bytes themselves.
        const keepAll = m.format !== "cms";
        this.#phase = {
          p: "receiving",
          r: {
            req: { id: m.id, origin: m.origin, name: m.name, mediaType, format: m.format, pss: m.pss, size: m.size },
            received: 0,
            h256: sha256.create(),
            h512: keepAll || !this.#needsSha512 ? null : sha512.create(),
            kept: new Uint8Array(keepAll ? m.size : Math.min(m.size, PREVIEW_LEN)),
            keptLen: 0,
          },
        };
        return [];
      }
      case "document_part": {
        if (this.#phase.p !== "receiving") {
          return this.fail(new Failure("channel", "the computer sent part of a document it had not announced"));
        }
        const r = this.#phase.r;
        let data: Uint8Array;
        try {
          data = b64Field("document part", m.data, DOCUMENT_PART);
        } catch {
          return this.fail(new Failure("channel", "the computer sent a part of another request, or of a wrong size"));
        }
        if (m.id !== r.req.id || data.length === 0) {
          return this.fail(new Failure("channel", "the computer sent a part of another request, or of a wrong size"));
        }
        if (r.received + data.length > r.req.size) {
          return this.fail(new Failure("channel", "the computer sent more of the document than it announced"));
        }
        r.h256.update(data);
        r.h512?.update(data);
        const room = r.kept.length - r.keptLen;
        if (room > 0) {
          r.kept.set(data.subarray(0, room), r.keptLen);
          r.keptLen += Math.min(room, data.length);
        }
        r.received += data.length;
        if (r.received < r.req.size) return [];
        this.#phase = { p: "ready" };
        const digest256 = r.h256.digest();
        const digests =
          r.req.format === "cms" ? { sha256: digest256, sha512: r.h512 ? r.h512.digest() : new Uint8Array(0), computedHere: true } : null;
        return this.#ask(r.req, digest256, digests, r.kept.subarray(0, r.keptLen));
      }
      case "sign_digest": {
        const mediaType = this.#begin(m.id, m.origin, m.media_type);
        if (typeof mediaType !== "string") return mediaType;
        const offer = effectiveDocuments(this.#config.documents);
        if (!offer.digest || m.format === "raw") {
          return this.fail(
            new Failure("invalid_input", "the computer asked to sign a document by its digest, which this phone did not offer for it"),
          );
        }
        let sha: Uint8Array;
        let sha5: Uint8Array;
        let preview: Uint8Array;
        try {
          sha = b64Field("sha256", m.sha256, 32);
          sha5 = b64Field("sha512", m.sha512, 64);
          preview = b64Field("preview", m.preview, PREVIEW_LEN);
        } catch {
          sha = new Uint8Array(0);
          sha5 = sha;
          preview = sha;
        }
        if (m.size <= offer.whole || sha.length !== 32 || sha5.length !== 64 || preview.length > m.size) {
          return this.fail(
            new Failure(
              "invalid_input",
              "the computer's digest request is malformed (a small document, a wrong digest length or preview); nothing was signed",
            ),
          );
        }
        const req = { id: m.id, origin: m.origin, name: m.name, mediaType, format: m.format, pss: m.pss, size: m.size };
        return this.#ask(req, sha, { sha256: sha, sha512: sha5, computedHere: false }, preview);
      }
      case "cancel": {
        const prompted = this.#phase.p === "prompting" && this.#phase.id === m.id;
        const receiving = this.#phase.p === "receiving" && this.#phase.r.req.id === m.id;
        if (prompted || receiving) {
          if (this.#withdrawn.length === WITHDRAWN_KEPT) this.#withdrawn.shift();
          this.#withdrawn.push(m.id);
          this.#phase = { p: "ready" };
        }
        return [{ kind: "withdrawn", id: m.id, reason: display.field(m.reason, 200), prompted }];
      }
      case "bye": {
        const reason = display.field(m.reason, 300);
        if (m.code !== null) {
          const code: ErrorCode = m.code === "unknown" ? "channel" : m.code;
          return this.#close(new Failure(code, `the computer ended the session: ${reason}`));
        }
        return [{ kind: "ended", reason }, ...this.#close(null)];
      }
      default:
        return this.#close(new Failure("channel", "the computer sent a message out of turn"));
    }
  }

  /**
   * The checks every request passes first: one at a time, a new id, the QR's origin, a media type token.
   * Returns the normalised media type, or the actions that end the session.
   */
  #begin(id: number, origin: string, mediaType: string): string | PhoneAction[] {
    if (this.#phase.p !== "ready") {
      return this.fail(new Failure("channel", "the computer sent a second request before this one was answered"));
    }
    if (id <= this.#lastId) return this.fail(new Failure("channel", "the computer reused a request id"));
    this.#lastId = id;
    let originOk = origin === this.qr.payload.origin;
    try {
      display.origin(origin);
    } catch {
      originOk = false;
    }
    if (!originOk) {
      return this.fail(new Failure("refused_by_policy", "the computer named another origin than the QR; nothing was signed"));
    }
    try {
      return display.mediaType(mediaType);
    } catch (e) {
      return this.fail(new Failure("invalid_input", `${asFailure(e).message}; nothing was signed`));
    }
  }

  /** A request whose document is all here (or all the phone will get): refused before asking, or asked. */
  #ask(a: Request, digest256: Uint8Array, digests: Digests | null, data: Uint8Array): PhoneAction[] {
    try {
      // A format this phone did not offer, a protocol statement, or a DER structure asked for raw, is
      // refused before anything is asked.
      if (!formatsSigned(this.#config.formats).includes(a.format)) {
        throw new Failure("invalid_input", `this phone does not make ${a.format} signatures; nothing was signed`);
      }
      purpose.checkDocument(data, a.format === "raw");
    } catch (e) {
      const failure = asFailure(e);
      let out: PhoneAction[];
      try {
        out = this.#seal(failedResponse(a.id, failure));
      } catch (e2) {
        return this.#close(asFailure(e2));
      }
      out.push({ kind: "refused", id: a.id, origin: a.origin, failure });
      return out;
    }
    const prompt: Prompt = {
      id: a.id,
      origin: a.origin,
      name: a.name,
      blind: a.format === "raw" && purpose.needsBlindConfirmation(data),
      unchecked: digests !== null && !digests.computedHere,
      typeWarning: display.typeMismatch(a.mediaType, data),
      sha256: toHex(digest256),
      mediaType: a.mediaType,
      data,
      size: a.size,
      digests,
      format: a.format,
      pss: a.pss,
    };
    this.#phase = { p: "prompting", id: a.id };
    return [{ kind: "prompt", prompt }];
  }

  /** The person's answer to request `id` (refused when the computer withdrew it meanwhile). */
  answer(id: number, answer: PhoneAnswer): PhoneAction[] {
    if (this.isWithdrawn(id)) {
      throw new Failure("expired", "the computer withdrew this request; no answer was sent");
    }
    if (!(this.#phase.p === "prompting" && this.#phase.id === id)) {
      throw new Failure("invalid_input", `no request ${id} is waiting for an answer`);
    }
    let m: ChannelMessage;
    switch (answer.kind) {
      case "approved":
        m = { type: "sign_response", id, status: "approved", signature: b64.encode(answer.signature) };
        break;
      case "declined":
        m = { type: "sign_response", id, status: "declined" };
        break;
      case "failed":
        m = failedResponse(id, answer.failure);
        break;
    }
    const frames = this.#seal(m);
    this.#phase = { p: "ready" };
    return frames;
  }

  /** Ends the session because of `e` (a goodbye with its code goes to the computer). */
  fail(e: Failure): PhoneAction[] {
    if (this.closed) return [];
    return this.#goodbye(e.message, e);
  }

  /** The person ends the session. */
  end(reason: string): PhoneAction[] {
    if (this.closed) return [];
    return this.#goodbye(reason, null);
  }

  #goodbye(reason: string, failure: Failure | null): PhoneAction[] {
    return [...goodbyeFrames(this.#channel, reason, failure), ...this.#close(failure)];
  }

  #seal(m: ChannelMessage): PhoneAction[] {
    return sealFrames(this.#channel, m);
  }

  #close(failure: Failure | null): PhoneAction[] {
    this.#phase = { p: "closed" };
    return [{ kind: "closed", failure }];
  }
}

function failedResponse(id: number, f: Failure): ChannelMessage {
  return { type: "sign_response", id, status: "failed", code: f.code, message: `${f.code}: ${f.message}` };
}

/** Any thrown value as a failure; `channel` marks a broken handshake or channel. */
function asFailure(e: unknown, channel = false): Failure {
  if (e instanceof Failure) return e;
  const message = e instanceof Error ? e.message : String(e);
  return channel
    ? new Failure("channel", `the secure channel failed (${message}): the QR, the relay or a frame was altered`)
    : new Failure("internal", message);
}
