// TypeScript declarations for kalit.js.

export type ErrorCode =
  | "agent_not_running" | "origin_not_allowed" | "local_network_blocked" | "relay_unreachable"
  | "timeout" | "cancelled" | "declined" | "expired" | "busy" | "invalid_signature" | "channel"
  | "invalid_input" | "too_large" | "protocol" | "refused_by_policy" | "not_found" | "unauthorized"
  | "untrusted_certificate" | "rate_limited" | "unavailable" | "internal" | (string & {});

export declare const ErrorCodes: Readonly<{
  AGENT_NOT_RUNNING: "agent_not_running"; ORIGIN_NOT_ALLOWED: "origin_not_allowed";
  LOCAL_NETWORK_BLOCKED: "local_network_blocked"; RELAY_UNREACHABLE: "relay_unreachable";
  TIMEOUT: "timeout"; CANCELLED: "cancelled"; DECLINED: "declined"; EXPIRED: "expired"; BUSY: "busy";
  INVALID_SIGNATURE: "invalid_signature"; CHANNEL: "channel"; INVALID_INPUT: "invalid_input";
  TOO_LARGE: "too_large"; PROTOCOL: "protocol";
}>;

export declare class KalitError extends Error {
  readonly code: ErrorCode;
  readonly details?: { status?: number };
  constructor(code: ErrorCode, message: string, details?: { status?: number });
}

export interface Config { agent: string; timeoutMs: number; pollMs: number; }
export declare function configure(options?: Partial<Config>): Config;

export interface CertInfo { subject: string; issuer: string; serial: string; not_before: string; not_after: string; sha256: string; }
export interface AgentStatus { service: "kalit-agent"; version: string; api: number; relay: string; relay_id: string; origin_allowed: boolean; }
export declare function status(): Promise<AgentStatus>;

export type Bytes = Blob | ArrayBuffer | ArrayBufferView | string;
export declare function hash(data: Bytes, alg?: "sha256" | "sha384" | "sha512"): Promise<string>;

export interface SessionInfo { session: string; qr?: string; qrSvg?: string; expiresAt?: number; sas?: string; login?: string; }
export interface SignOptions {
  format?: "cms" | "raw"; name?: string; mediaType?: string; pss?: boolean; ttl?: number;
  timeoutMs?: number; dialog?: boolean; onSession?: (info: SessionInfo) => void;
}
export interface Signature {
  format: "cms" | "raw"; signature: Uint8Array; signatureBase64: string; scheme: string; sha256: string;
  certificatePem: string; signer: CertInfo; login: string;
}
export declare function sign(data: Bytes, options?: SignOptions): Promise<Signature>;

export interface VerifyReport {
  valid: boolean; format: string; scheme: string | null; signer: CertInfo | null; signing_time: string | null;
  chain: { trusted: boolean; path: string[] } | null; reason: string | null;
}
export declare function verify(data: Bytes, signature: Bytes, options?: { format?: "cms" | "raw"; certificate?: string }): Promise<VerifyReport>;
