// JSON over HTTP to the relay and the RA, with their error bodies read as failures. Every string from
// them is text for the person: it is escaped for display, never interpreted.

import * as display from "../protocol/display.js";
import { Failure, errorCode } from "../protocol/errors.js";

export type Fetch = typeof fetch;

/** The base address of a service: https, or http only to this device (loopback), without a trailing slash. */
export function checkEndpoint(url: string, what: string): string {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    throw new Failure("invalid_input", `the ${what} address "${display.field(url, 80)}" is not a URL`);
  }
  const loopback = u.hostname === "localhost" || u.hostname === "[::1]" || /^127\.\d+\.\d+\.\d+$/.test(u.hostname);
  if (u.protocol !== "https:" && !(u.protocol === "http:" && loopback)) {
    throw new Failure("invalid_input", `the ${what} address must use https (http only on this device)`);
  }
  if (u.username || u.password || u.search || u.hash) {
    throw new Failure("invalid_input", `the ${what} address must not hold a user, a query or a fragment`);
  }
  return url.replace(/\/+$/, "");
}

/** A service the phone talks to, as a person names it. */
export type Service = "relay" | "registration office";

/**
 * A service that could not be reached at all (no network, a wrong address, the service down): said with
 * its address (an origin, never a path) and what to do. The app shows it in the person's language.
 */
export class Unreachable extends Failure {
  constructor(
    readonly service: Service,
    readonly address: string,
  ) {
    super("unavailable", `cannot reach the ${service} at ${address}; check the network connection, then try again`);
  }
}

/** The origin of a service's URL (scheme, host and port; never a path), or the text as it is when it is not a URL. */
export function originOf(url: string): string {
  try {
    return new URL(url).origin;
  } catch {
    return url;
  }
}

export class JsonClient {
  readonly base: string;

  constructor(
    base: string,
    private readonly what: Service,
    private readonly fetchImpl: Fetch = fetch,
  ) {
    this.base = checkEndpoint(base, what);
  }

  async get<T>(path: string): Promise<T> {
    return this.call<T>("GET", path, undefined);
  }

  async post<T>(path: string, body?: unknown): Promise<T> {
    return this.call<T>("POST", path, body);
  }

  private async call<T>(method: string, path: string, body: unknown): Promise<T> {
    let resp: Response;
    try {
      resp = await this.fetchImpl(`${this.base}${path}`, {
        method,
        headers: body === undefined ? {} : { "content-type": "application/json" },
        ...(body === undefined ? {} : { body: JSON.stringify(body) }),
        credentials: "omit",
        redirect: "error",
      });
    } catch {
      // The browser says only "Failed to fetch", whatever the cause: the address and what to do say more.
      throw new Unreachable(this.what, originOf(this.base));
    }
    const text = await resp.text();
    let json: unknown;
    try {
      json = text === "" ? null : JSON.parse(text);
    } catch {
      json = undefined;
    }
    if (!resp.ok) {
      const err = (json as { error?: { code?: unknown; message?: unknown } } | undefined)?.error;
      if (err && typeof err.message === "string") {
        const code = errorCode(err.code);
        throw new Failure(code === "unknown" ? "unavailable" : code, `${this.what}: ${display.field(err.message, 300)}`);
      }
      throw new Failure("unavailable", `the ${this.what} answered HTTP ${resp.status}`);
    }
    if (json === undefined) throw new Failure("unavailable", `the ${this.what} answered something that is not JSON`);
    return json as T;
  }
}
