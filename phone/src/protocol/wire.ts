// The wire types the phone speaks (kalit_proto::session and relay): typed, read strictly in their
// types and tolerantly in their fields (responses, relay events and peer messages may gain fields;
// requests may not), and written exactly as the Rust side writes them (serde's field order), because
// the frames of the conformance vectors are compared byte for byte.

import { Failure, type ErrorCode, errorCode } from "./errors.js";

export type DocFormat = "raw" | "cms" | "pades";

const DOC_FORMATS: readonly DocFormat[] = ["raw", "cms", "pades"];

/** The formats a phone signs when its hello lists none: the first phones' (kalit_proto FORMATS_BEFORE_LISTING). */
export const FORMATS_BEFORE_LISTING: readonly DocFormat[] = ["raw", "cms"];

/** The formats a phone signs, from its hello's list (kalit_proto::session::formats_signed). */
export function formatsSigned(listed: readonly DocFormat[] | undefined): readonly DocFormat[] {
  return listed && listed.length > 0 ? listed : FORMATS_BEFORE_LISTING;
}

export interface Attestation {
  relay_id: string;
  login: string;
  cert_fingerprint: string;
  device_id: string;
  device_key: string;
  issued_at: number;
  expires_at: number;
}

export interface SignedAttestation {
  attestation: Attestation;
  signature: string;
  /** The endorsed signing key that signed; absent when the relay's root key did (identity rotation). */
  relay_key?: EndorsedRelayKey;
}

/** The relay's root key lets this key sign its statements from `not_before` to `not_after`. */
export interface RelayKey {
  relay_id: string;
  public_key: string;
  not_before: number;
  not_after: number;
}

export interface EndorsedRelayKey {
  key: RelayKey;
  signature: string;
}

/** The relay's statement that a tunnel's waiting side is a browser page of `origin` (direct mode). */
export interface OriginAttestation {
  relay_id: string;
  tunnel: string;
  origin: string;
  issued_at: number;
  expires_at: number;
}

export interface SignedOriginAttestation {
  attestation: OriginAttestation;
  signature: string;
  relay_key?: EndorsedRelayKey;
}

export type SignAnswer =
  | { status: "approved"; signature: string }
  | { status: "declined" }
  | { status: "failed"; code?: ErrorCode; message: string };

/** What a phone's hello offers beyond MAX_DOCUMENT (kalit_proto::session::DocumentSupport). */
export interface DocumentSupport {
  /** The largest document it takes whole, in parts, bytes. */
  whole: number;
  /** Whether it signs a larger one by the computer's digest (CMS only here). */
  digest: boolean;
}

export type ChannelMessage =
  | {
      type: "hello";
      login: string;
      device_name: string;
      chain: string[];
      attestation: SignedAttestation;
      /** The formats this phone signs (absent or empty: FORMATS_BEFORE_LISTING). */
      formats?: DocFormat[];
      documents?: DocumentSupport;
    }
  | {
      type: "sign_request";
      id: number;
      origin: string;
      name: string;
      media_type: string;
      data: string;
      format: DocFormat;
      pss: boolean;
    }
  | {
      type: "sign_start";
      id: number;
      origin: string;
      name: string;
      media_type: string;
      format: DocFormat;
      pss: boolean;
      size: number;
    }
  | { type: "document_part"; id: number; data: string }
  | {
      type: "sign_digest";
      id: number;
      origin: string;
      name: string;
      media_type: string;
      format: DocFormat;
      pss: boolean;
      size: number;
      sha256: string;
      sha512: string;
      preview: string;
    }
  | ({ type: "sign_response"; id: number } & SignAnswer)
  | { type: "cancel"; id: number; reason: string }
  | { type: "bye"; reason: string; code: ErrorCode | null };

export type TunnelEvent =
  /** To the phone, first, on a join socket opened with `?challenge=1`: the nonce its join request signs over. */
  | { event: "challenge"; nonce: string; expires_at: number }
  | { event: "ready"; expires_in: number }
  | { event: "peer"; login: string; device_id: string }
  | {
      event: "joined";
      attestation: SignedAttestation;
      computer_address: string;
      same_network: boolean;
      /** Present when the computer's side is a browser page (direct mode). */
      origin?: SignedOriginAttestation;
    }
  | { event: "resumed" }
  | { event: "error"; code: ErrorCode; message: string };

// ---- writing (serde's order: the tag, then the fields as declared) ----

const attestationJson = (a: SignedAttestation) => ({
  attestation: {
    relay_id: a.attestation.relay_id,
    login: a.attestation.login,
    cert_fingerprint: a.attestation.cert_fingerprint,
    device_id: a.attestation.device_id,
    device_key: a.attestation.device_key,
    issued_at: a.attestation.issued_at,
    expires_at: a.attestation.expires_at,
  },
  signature: a.signature,
  ...(a.relay_key ? { relay_key: relayKeyJson(a.relay_key) } : {}),
});

const relayKeyJson = (e: EndorsedRelayKey) => ({
  key: { relay_id: e.key.relay_id, public_key: e.key.public_key, not_before: e.key.not_before, not_after: e.key.not_after },
  signature: e.signature,
});

/** The fields every request to sign starts with, in serde's order. */
function requestHead(m: { type: string; id: number; origin: string; name: string; media_type: string; format: DocFormat; pss: boolean }) {
  return { type: m.type, id: m.id, origin: m.origin, name: m.name, media_type: m.media_type, format: m.format, pss: m.pss };
}

export function serializeChannelMessage(m: ChannelMessage): string {
  switch (m.type) {
    case "hello":
      return JSON.stringify({
        type: m.type,
        login: m.login,
        device_name: m.device_name,
        chain: m.chain,
        attestation: attestationJson(m.attestation),
        ...(m.formats && m.formats.length > 0 ? { formats: m.formats } : {}),
        ...(m.documents ? { documents: { whole: m.documents.whole, digest: m.documents.digest } } : {}),
      });
    case "sign_request":
      return JSON.stringify({
        type: m.type,
        id: m.id,
        origin: m.origin,
        name: m.name,
        media_type: m.media_type,
        data: m.data,
        format: m.format,
        pss: m.pss,
      });
    case "sign_start":
      return JSON.stringify({ ...requestHead(m), size: m.size });
    case "document_part":
      return JSON.stringify({ type: m.type, id: m.id, data: m.data });
    case "sign_digest":
      return JSON.stringify({ ...requestHead(m), size: m.size, sha256: m.sha256, sha512: m.sha512, preview: m.preview });
    case "sign_response":
      switch (m.status) {
        case "approved":
          return JSON.stringify({ type: m.type, id: m.id, status: m.status, signature: m.signature });
        case "declined":
          return JSON.stringify({ type: m.type, id: m.id, status: m.status });
        case "failed":
          return JSON.stringify(
            m.code === undefined
              ? { type: m.type, id: m.id, status: m.status, message: m.message }
              : { type: m.type, id: m.id, status: m.status, code: m.code, message: m.message },
          );
      }
      break;
    case "cancel":
      return JSON.stringify({ type: m.type, id: m.id, reason: m.reason });
    case "bye":
      return JSON.stringify({ type: m.type, reason: m.reason, code: m.code });
  }
  throw new Failure("internal", "unknown channel message");
}

// ---- reading ----

type Obj = Record<string, unknown>;

class Reader {
  constructor(
    private readonly o: Obj,
    private readonly what: string,
  ) {}

  private bad(field: string, want: string): Failure {
    return new Failure("channel", `malformed ${this.what}: \`${field}\` must be ${want}`);
  }

  str(k: string): string {
    const v = this.o[k];
    if (typeof v !== "string") throw this.bad(k, "a string");
    return v;
  }

  bool(k: string): boolean {
    const v = this.o[k];
    if (typeof v !== "boolean") throw this.bad(k, "true or false");
    return v;
  }

  uint(k: string, max: number): number {
    const v = this.o[k];
    if (typeof v !== "number" || !Number.isInteger(v) || v < 0 || v > max) throw this.bad(k, "a whole number");
    return v;
  }

  int(k: string): number {
    const v = this.o[k];
    if (typeof v !== "number" || !Number.isSafeInteger(v)) throw this.bad(k, "a whole number");
    return v;
  }

  obj(k: string): Obj {
    return asObj(this.o[k], `${this.what}: \`${k}\``);
  }

  strings(k: string): string[] {
    const v = this.o[k];
    if (!Array.isArray(v) || !v.every((x) => typeof x === "string")) throw this.bad(k, "a list of strings");
    return v as string[];
  }

  has(k: string): boolean {
    return this.o[k] !== undefined && this.o[k] !== null;
  }
}

function asObj(v: unknown, what: string): Obj {
  if (typeof v !== "object" || v === null || Array.isArray(v)) throw new Failure("channel", `malformed ${what}: not an object`);
  return v as Obj;
}

function parseJson(text: string, what: string): Obj {
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch {
    throw new Failure("channel", `malformed ${what}: not JSON`);
  }
  return asObj(v, what);
}

const U32 = 0xffffffff;

export function readRelayKey(o: Obj): EndorsedRelayKey {
  const r = new Reader(o, "relay key");
  const k = new Reader(r.obj("key"), "relay key");
  return {
    key: { relay_id: k.str("relay_id"), public_key: k.str("public_key"), not_before: k.int("not_before"), not_after: k.int("not_after") },
    signature: r.str("signature"),
  };
}

export function readAttestation(o: Obj): SignedAttestation {
  const r = new Reader(o, "attestation");
  const a = new Reader(r.obj("attestation"), "attestation");
  const signed: SignedAttestation = {
    attestation: {
      relay_id: a.str("relay_id"),
      login: a.str("login"),
      cert_fingerprint: a.str("cert_fingerprint"),
      device_id: a.str("device_id"),
      device_key: a.str("device_key"),
      issued_at: a.int("issued_at"),
      expires_at: a.int("expires_at"),
    },
    signature: r.str("signature"),
  };
  if (r.has("relay_key")) signed.relay_key = readRelayKey(r.obj("relay_key"));
  return signed;
}

export function readOriginAttestation(o: Obj): SignedOriginAttestation {
  const r = new Reader(o, "origin statement");
  const a = new Reader(r.obj("attestation"), "origin statement");
  const signed: SignedOriginAttestation = {
    attestation: {
      relay_id: a.str("relay_id"),
      tunnel: a.str("tunnel"),
      origin: a.str("origin"),
      issued_at: a.int("issued_at"),
      expires_at: a.int("expires_at"),
    },
    signature: r.str("signature"),
  };
  if (r.has("relay_key")) signed.relay_key = readRelayKey(r.obj("relay_key"));
  return signed;
}

function format(r: Reader): DocFormat {
  const f = r.str("format");
  if (!(DOC_FORMATS as readonly string[]).includes(f)) throw new Failure("channel", `malformed message: unknown format ${JSON.stringify(f).slice(0, 40)}`);
  return f as DocFormat;
}

export function parseChannelMessage(text: string): ChannelMessage {
  const o = parseJson(text, "message");
  const r = new Reader(o, "message");
  const type = r.str("type");
  switch (type) {
    case "hello": {
      const hello: ChannelMessage = {
        type,
        login: r.str("login"),
        device_name: r.str("device_name"),
        chain: r.strings("chain"),
        attestation: readAttestation(r.obj("attestation")),
      };
      // Names this version does not know (a newer phone's) are skipped.
      if (r.has("formats")) hello.formats = r.strings("formats").filter((f): f is DocFormat => (DOC_FORMATS as readonly string[]).includes(f));
      if (r.has("documents")) {
        const d = new Reader(r.obj("documents"), "hello: `documents`");
        hello.documents = { whole: d.uint("whole", Number.MAX_SAFE_INTEGER), digest: d.bool("digest") };
      }
      return hello;
    }
    case "sign_start":
      return {
        type,
        id: r.uint("id", U32),
        origin: r.str("origin"),
        name: r.str("name"),
        media_type: r.str("media_type"),
        format: format(r),
        pss: r.bool("pss"),
        size: r.uint("size", Number.MAX_SAFE_INTEGER),
      };
    case "document_part":
      return { type, id: r.uint("id", U32), data: r.str("data") };
    case "sign_digest":
      return {
        type,
        id: r.uint("id", U32),
        origin: r.str("origin"),
        name: r.str("name"),
        media_type: r.str("media_type"),
        format: format(r),
        pss: r.bool("pss"),
        size: r.uint("size", Number.MAX_SAFE_INTEGER),
        sha256: r.str("sha256"),
        sha512: r.str("sha512"),
        preview: r.str("preview"),
      };
    case "sign_request":
      return {
        type,
        id: r.uint("id", U32),
        origin: r.str("origin"),
        name: r.str("name"),
        media_type: r.str("media_type"),
        data: r.str("data"),
        format: format(r),
        pss: r.bool("pss"),
      };
    case "sign_response": {
      const id = r.uint("id", U32);
      const status = r.str("status");
      if (status === "approved") return { type, id, status, signature: r.str("signature") };
      if (status === "declined") return { type, id, status };
      if (status === "failed") {
        const message = o.message === undefined ? "" : r.str("message");
        return r.has("code")
          ? { type, id, status, code: errorCode(r.str("code")), message }
          : { type, id, status, message };
      }
      throw new Failure("channel", "malformed message: unknown answer status");
    }
    case "cancel":
      return { type, id: r.uint("id", U32), reason: r.str("reason") };
    case "bye":
      return { type, reason: r.str("reason"), code: r.has("code") ? errorCode(r.str("code")) : null };
    default:
      throw new Failure("channel", "malformed message: unknown message type");
  }
}

export function parseTunnelEvent(text: string): TunnelEvent {
  const o = parseJson(text, "relay event");
  const r = new Reader(o, "relay event");
  const event = r.str("event");
  switch (event) {
    case "challenge":
      return { event, nonce: r.str("nonce"), expires_at: r.int("expires_at") };
    case "ready":
      return { event, expires_in: r.uint("expires_in", Number.MAX_SAFE_INTEGER) };
    case "peer":
      return { event, login: r.str("login"), device_id: r.str("device_id") };
    case "joined": {
      const joined: TunnelEvent = {
        event,
        attestation: readAttestation(r.obj("attestation")),
        computer_address: r.str("computer_address"),
        same_network: r.bool("same_network"),
      };
      if (r.has("origin")) joined.origin = readOriginAttestation(r.obj("origin"));
      return joined;
    }
    case "resumed":
      return { event };
    case "error":
      return { event, code: errorCode(r.str("code")), message: r.str("message") };
    default:
      throw new Failure("unavailable", "the relay sent an event this Kalit does not know");
  }
}
