// Kalit's error codes (kalit_proto::ErrorCode, snake_case on the wire) and the failure both sides of a
// session report: a code a program acts on and a message a person reads.

export const ERROR_CODES = [
  "internal",
  "usage",
  "wrong_pin",
  "locked",
  "wrong_password",
  "not_found",
  "refused_by_policy",
  "invalid_input",
  "invalid_signature",
  "declined",
  "corrupt",
  "already_exists",
  "key_mismatch",
  "weak_secret",
  "io",
  "try_later",
  "untrusted_certificate",
  "login_taken",
  "rate_limited",
  "expired",
  "unavailable",
  "unauthorized",
  "too_large",
  "channel",
  "busy",
  "unknown",
] as const;

export type ErrorCode = (typeof ERROR_CODES)[number];

/** A code read from the wire: one this version does not know reads as `unknown` (never sent). */
export function errorCode(s: unknown): ErrorCode {
  return (ERROR_CODES as readonly unknown[]).includes(s) && s !== "unknown" ? (s as ErrorCode) : "unknown";
}

/** Why something failed. */
export class Failure extends Error {
  override name = "Failure";
  constructor(
    readonly code: ErrorCode,
    message: string,
  ) {
    super(message);
  }
}

export const fail = (code: ErrorCode, message: string): Failure => new Failure(code, message);

/** Any thrown value as a failure. A failure thrown by a separately loaded bundle (the scanner, PFX) is
 * an instance of that bundle's own class, so it is recognised by its name and code, not `instanceof`. */
export function asFailure(e: unknown): Failure {
  if (e instanceof Failure) return e;
  if (e instanceof Error && e.name === "Failure" && "code" in e) {
    const code = errorCode((e as { code: unknown }).code);
    return new Failure(code === "unknown" ? "internal" : code, e.message);
  }
  return new Failure("internal", e instanceof Error ? e.message : String(e));
}
