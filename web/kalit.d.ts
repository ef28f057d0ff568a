// TypeScript declarations for kalit.js.

// ---- generated from kalit-proto by crates/kalit-proto/tests/contract.rs: do not edit by hand ----
/** The agent's stable error codes (a failure on the phone reaches the page as its own code). */
export type AgentErrorCode = "internal" | "usage" | "wrong_pin" | "locked" | "wrong_password" | "not_found" |
  "refused_by_policy" | "invalid_input" | "invalid_signature" | "declined" | "corrupt" | "already_exists" |
  "key_mismatch" | "weak_secret" | "io" | "try_later" | "untrusted_certificate" | "login_taken" |
  "rate_limited" | "expired" | "unavailable" | "unauthorized" | "too_large" | "channel" | "busy";
/** `GET /v1/status`. */
export interface AgentStatus { api: number; origin_allowed: boolean; relay: string; relay_id: RelayId; service: string; version: string; }
/** The JSON body of every error answer of the relay, the RA and the agent: `{"error": {"code": ..., "message": ...}}`. */
export interface ApiError { error: ErrorBody; }
/** The language of a visible PDF signature's words ("Digitally signed by", "Date", "Reason"): the document's, which the portal knows. */
export type BoxLanguage = "en" | "uz" | "ru";
/** A summary of an X.509 certificate. */
export interface CertInfo { issuer: string; not_after: string; not_before: string; serial: string; sha256: string; subject: string; }
/** Result of checking a certificate chain against trust anchors. */
export interface ChainReport { path: string[]; revocation?: string | null; trusted: boolean; }
/** Output format of a document signature. */
export type DocFormat = "raw" | "cms" | "pades";
/** What a phone's hello offers beyond [`MAX_DOCUMENT`]. */
export interface DocumentSupport { digest: boolean; whole: number; }
/** The JSON shape of an error printed by `kalit ... --json`. */
export interface ErrorBody { code: AgentErrorCode; message: string; }
/** `POST /v1/hash`. */
export interface HashRequest { alg?: string | null; data: string; }
/** Answer to [`HashRequest`]. */
export interface HashResponse { alg: string; digest: string; }
/** A login at a relay (lowercase; `kalit_core::statement::normalize_login` checks and normalises one). */
export type Login = string;
/** How complete a PDF signature is (ETSI EN 319 142-1 baseline levels). */
export type PadesLevel = "b-b" | "b-t" | "b-lt" | "b-lta";
/** How the agent makes a PDF signature (`format: "pades"`). */
export interface PadesOptions { field?: string | null; lang?: BoxLanguage; level?: PadesLevel; reason?: string | null; visible?: string | null; }
/** One signature (or document timestamp) of a PDF. */
export interface PdfSignatureReport { bytes_after: number; chain?: ChainReport | null; changed_after?: string | null; claimed_time?: string | null; covers_whole_document: boolean; field: string; kind: string; level: string; reason?: string | null; scheme?: string | null; signer?: CertInfo | null; signer_reason?: string | null; timestamp?: TimestampReport | null; valid: boolean; }
/** What `kalit verify --file doc.pdf --json` prints: every signature in a PDF. */
export interface PdfVerifyReport { signatures: PdfSignatureReport[]; valid: boolean; }
/** A relay's id: the first 16 bytes of SHA-256 over its Ed25519 attestation key, hex. */
export type RelayId = string;
/** A new session: show `qr_svg` (or `qr`) to the person, then poll its state. */
export interface SessionCreated { expires_at: number; qr: string; qr_svg: string; session: string; token: string; }
/** Where a session is. */
export type SessionPhase = "waiting" | "pairing" | "connected" | "closed";
/** `POST /v1/sessions`. */
export interface SessionRequest { ttl?: number | null; }
/** `GET /v1/sessions/{id}`. */
export interface SessionState { certificate?: CertInfo | null; documents?: DocumentSupport | null; error?: ErrorBody | null; login?: Login | null; phase: SessionPhase; sas?: string | null; session: string; transfer?: Transfer | null; }
/** `POST /v1/sessions/{id}/sign`. */
export interface SignDocRequest { data: string; format?: DocFormat; media_type?: string | null; name: string; pades?: PadesOptions | null; pss?: boolean; }
/** Answer to [`SignDocRequest`]: checked by the agent before it is returned. */
export interface SignDocResponse { certificate_pem: string; document?: string | null; format: DocFormat; level?: PadesLevel | null; login: Login; scheme: string; sha256: string; signature: string; signer: CertInfo; }
/** A verified RFC 3161 timestamp. */
export interface TimestampReport { chain?: ChainReport | null; policy: string; serial: string; time: string; tsa: string; }
/** How much of a document has gone to the phone. */
export interface Transfer { sent: number; total: number; }
/** `POST /v1/verify/pdf`: every signature and document timestamp in a PDF. */
export interface VerifyPdfRequest { data: string; }
/** Result of verifying a signature. */
export interface VerifyReport { chain?: ChainReport | null; format: string; reason?: string | null; scheme?: string | null; signer?: CertInfo | null; signing_time?: string | null; timestamp?: TimestampReport | null; valid: boolean; }
/** `POST /v1/verify`. */
export interface VerifyRequest { certificate?: string | null; data: string; format?: DocFormat; signature: string; }
// ---- end of generated ----

/** kalit.js's own codes (found in the browser), then every code the agent may answer with. */
export type ErrorCode =
  | "agent_not_running" | "origin_not_allowed" | "local_network_blocked" | "relay_unreachable"
  | "timeout" | "cancelled" | "protocol" | AgentErrorCode | (string & {});

export declare const ErrorCodes: Readonly<{
  AGENT_NOT_RUNNING: "agent_not_running"; ORIGIN_NOT_ALLOWED: "origin_not_allowed";
  LOCAL_NETWORK_BLOCKED: "local_network_blocked"; RELAY_UNREACHABLE: "relay_unreachable";
  TIMEOUT: "timeout"; CANCELLED: "cancelled"; DECLINED: "declined"; EXPIRED: "expired"; BUSY: "busy";
  INVALID_SIGNATURE: "invalid_signature"; CHANNEL: "channel"; INVALID_INPUT: "invalid_input";
  TOO_LARGE: "too_large"; PROTOCOL: "protocol"; REFUSED_BY_POLICY: "refused_by_policy";
}>;

export declare class KalitError extends Error {
  readonly code: ErrorCode;
  readonly details?: { status?: number };
  constructor(code: ErrorCode, message: string, details?: { status?: number });
}

/**
 * `auto` (default): the agent when it answers, direct mode when none runs and `relay` is set; `agent` or
 * `direct` only.
 */
export type Mode = "auto" | "agent" | "direct";
export interface Config {
  /** pollMs: how often the agent is asked whether the phone has paired (default 100). */
  agent: string; timeoutMs: number; pollMs: number;
  /** The relay for direct mode (https, or http on this machine); null: direct mode off. */
  relay: string | null;
  /** The relay's id, pinned (optional). */
  relayId: string | null;
  mode: Mode;
}
export declare function configure(options?: Partial<Config>): Config;

/** Direct mode: no agent; the page signs through this relay. */
export interface DirectStatus { mode: "direct"; relay: string; relay_id: RelayId; relay_name: string; }
export declare function status(): Promise<(AgentStatus & { mode: "agent" }) | DirectStatus>;

export type Bytes = Blob | ArrayBuffer | ArrayBufferView | string;
export declare function hash(data: Bytes, alg?: "sha256" | "sha384" | "sha512"): Promise<string>;

export interface SessionInfo { session: string; qr?: string; qrSvg?: string; expiresAt?: number; sas?: string; login?: string; mode?: "agent" | "direct"; }
export interface SignOptions {
  format?: "cms" | "raw" | "pades"; name?: string; mediaType?: string; pss?: boolean; ttl?: number;
  timeoutMs?: number; dialog?: boolean; onSession?: (info: SessionInfo) => void;
  /** For `pades`: the level (`b-t` and above need the agent's TSA), `/Reason`, and a visible box "PAGE,X,Y,WIDTH,HEIGHT" in points from the lower-left corner of the page as shown (turned by its /Rotate); a box that does not fit on the page is refused; or `field`, the name of the PDF's own empty signature field to sign into, in the box its author drew; `lang`, the language of the box's words ("en", "uz", "ru"). */
  level?: PadesLevel; reason?: string; visible?: string; field?: string; lang?: "en" | "uz" | "ru";
  /** This call only (the configured mode otherwise). PDF signatures need the agent. */
  mode?: Mode;
  /** Offer "Sign with Kalit on this phone" (the app on this very device) [default: on phones]. */
  sameDevice?: boolean;
}
export interface Signature {
  format: "cms" | "raw" | "pades"; signature: Uint8Array; signatureBase64: string; scheme: string; sha256: string;
  certificatePem: string; signer: CertInfo; login: string;
  /** For `pades`: the signed PDF and the level it reached. */
  document?: Uint8Array; level?: PadesLevel;
  /** Which way it came: checked by the agent, or (direct) by kalit.js against the phone's certificate. */
  mode: "agent" | "direct";
  /** Direct mode: the relay it went through. */
  relay?: string;
}
export declare function sign(data: Bytes, options?: SignOptions): Promise<Signature>;

export declare function verify(data: Bytes, signature: Bytes, options?: { format?: "cms" | "raw"; certificate?: string }): Promise<VerifyReport>;
export declare function verifyPdf(pdf: Bytes): Promise<PdfVerifyReport>;
