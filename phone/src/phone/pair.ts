// Drives a PhoneSession over the relay's tunnel (a WebSocket): the join request first, then relay events
// (text) and Noise frames (binary). The person's answer is asked while frames keep being read, so a
// request the computer withdraws is taken off the screen at once (the prompt's signal aborts) and an
// answer that comes after the withdrawal is never sent.

import { checkNonce, deviceRequest } from "../protocol/ceremony.js";
import { b64 } from "../protocol/bytes.js";
import { Failure } from "../protocol/errors.js";
import type { DeviceKey } from "../protocol/keys.js";
import { MAX_WHOLE_DOCUMENT } from "../protocol/channel.js";
import { type PdfInspection, inspectPrepared } from "../protocol/pdf.js";
import { type PhoneAction, type PhoneAnswer, PhoneSession, type Prompt } from "../protocol/phone-session.js";
import { ACTION } from "../protocol/statement.js";
import { parseTunnelEvent } from "../protocol/wire.js";
import { Unreachable, originOf } from "./http.js";
import type { Relay, RegistrationRecord } from "./relay.js";

/** The part of the WebSocket API the driver uses (the browser's, or the `ws` package's in Node). */
export interface WebSocketLike {
  binaryType: string;
  readonly readyState: number;
  send(data: string | Uint8Array): void;
  close(code?: number, reason?: string): void;
  addEventListener(type: "open" | "close" | "error" | "message", listener: (ev: { data?: unknown }) => void): void;
}
export type WebSocketFactory = (url: string) => WebSocketLike;

export interface PairUi {
  /** The handshake is done: show the code both screens must show. */
  connected(info: { sas: string; origin: string; network: string | null; vouchedBy: string | null }): void;
  /**
   * Asks the person; `signal` aborts when the computer withdraws the request. `null`: nothing to send.
   * `pdf`: for a PDF signature, what the phone's own check of the prepared PDF found.
   */
  ask(prompt: Prompt, signal: AbortSignal, pdf: PdfInspection | null): Promise<PhoneAnswer | null>;
  /** Something to tell the person (a refusal, a withdrawal, the end). */
  notice(kind: "refused" | "withdrawn" | "ended" | "late", text: string): void;
}

export interface PairSummary {
  signed: number;
  declined: number;
  withdrawn: number;
}

/** Seconds to wait for the relay's answer to the join, and for the computer's handshake. */
export const JOIN_SECS = 15;

export function wsUrl(relayUrl: string, path: string): string {
  return relayUrl.replace(/^http/, "ws") + path;
}

export async function pair(p: {
  qrText: string;
  nowSecs: number;
  registration: RegistrationRecord;
  chain: Uint8Array[];
  device: DeviceKey;
  relay: Relay;
  ui: PairUi;
  connect: WebSocketFactory;
}): Promise<PairSummary> {
  const reg = p.registration;
  const relayKey = b64.decode(reg.relayPublicKey);
  if (!relayKey) throw new Failure("corrupt", "the stored relay key is damaged");
  const session = new PhoneSession(p.qrText, p.nowSecs, {
    relayId: reg.relayId,
    relayPublicKey: relayKey,
    login: reg.login,
    deviceId: reg.deviceId,
    chain: p.chain,
    // Up to 64 MiB whole, hashed as it streams in (only the first bytes are kept for a CMS); larger ones by
    // the computer's digest, with a separate confirmation.
    documents: { whole: MAX_WHOLE_DOCUMENT, digest: true },
    // PDF signatures too: the phone checks the computer's prepared PDF itself (protocol/pdf.ts).
    formats: ["raw", "cms", "pades"],
  });
  const tunnel = session.tunnelId();
  // The relay sends the nonce to sign over on the join socket itself (`challenge=1`): no request of its own,
  // so one connection (and one TLS handshake) less per signature. A relay older than that sends nothing
  // and waits for the join request: after a moment the phone asks for a nonce the old way.
  const joiner: Joiner = {
    join: async (nonce) =>
      JSON.stringify({ ...(await deviceRequest(reg.relayId, nonce, reg.login, reg.deviceId, ACTION.TUNNEL_JOIN, tunnel, p.device)), target: tunnel }),
    fallbackNonce: () => p.relay.nonce(),
    relay: originOf(reg.relayUrl),
  };
  return drive(session, p.connect(wsUrl(reg.relayUrl, `/v1/tunnel/${tunnel}/join?challenge=1`)), joiner, p.ui);
}

/** Milliseconds the phone waits for the relay's challenge before it asks `POST /v1/nonce` instead. */
export const CHALLENGE_WAIT_MS = 3000;

/** How the driver makes the join request. */
export interface Joiner {
  /** The join request (JSON) signed over `nonce`. */
  join(nonce: Uint8Array): Promise<string>;
  /** A nonce from the relay's `POST /v1/nonce`, for a relay that sends no challenge (an older one). */
  fallbackNonce?: () => Promise<Uint8Array>;
  /** How long to wait for the challenge before `fallbackNonce` (default {@link CHALLENGE_WAIT_MS}). */
  waitMs?: number;
  /** The relay's address as a person reads it (its origin), for the message when it cannot be reached. */
  relay?: string;
}

/**
 * Runs `session` over `ws` until it closes. The relay's first event is the challenge: the join request over
 * its nonce goes out before anything else (or, when no challenge came in time, over a nonce asked for).
 */
export function drive(session: PhoneSession, ws: WebSocketLike, joiner: Joiner, ui: PairUi): Promise<PairSummary> {
  ws.binaryType = "arraybuffer";
  const summary: PairSummary = { signed: 0, declined: 0, withdrawn: 0 };
  let network: string | null = null;
  let vouchedBy: string | null = null;
  let connected = false;
  let prompting: { id: number; abort: AbortController } | null = null;
  return new Promise<PairSummary>((resolve, reject) => {
    let done = false;
    const finish = (failure: Failure | null) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      clearTimeout(fallbackTimer);
      prompting?.abort.abort();
      try {
        ws.close(1000);
      } catch {
        /* already closed */
      }
      // The link is gone after the person answered something: the session simply ended.
      if (failure && !(failure.code === "unavailable" && summary.signed + summary.declined > 0)) reject(failure);
      else resolve(summary);
    };
    const timer = setTimeout(
      () => !connected && finish(new Failure("unavailable", "the relay or the computer did not answer in time")),
      JOIN_SECS * 1000,
    );
    const run = (actions: PhoneAction[]) => {
      for (const a of actions) {
        switch (a.kind) {
          case "send":
            if (!done) ws.send(a.frame);
            break;
          case "originAttested":
            vouchedBy = a.relayId;
            break;
          case "network":
            network = a.sameNetwork ? null : a.computerAddress;
            break;
          case "connected":
            connected = true;
            ui.connected({ sas: a.sas, origin: session.qr.payload.origin, network, vouchedBy });
            break;
          case "prompt":
            ask(a.prompt);
            break;
          case "refused":
            ui.notice("refused", a.failure.message);
            break;
          case "withdrawn":
            if (a.prompted) {
              summary.withdrawn++;
              if (prompting?.id === a.id) prompting.abort.abort();
            }
            ui.notice("withdrawn", a.reason);
            break;
          case "ended":
            ui.notice("ended", a.reason);
            break;
          case "closed":
            finish(a.failure);
            break;
        }
      }
    };
    const ask = (prompt: Prompt) => {
      const abort = new AbortController();
      prompting = { id: prompt.id, abort };
      // A PDF signature: the phone checks the computer's prepared PDF itself (one new unsigned field, a byte
      // range over everything but the hole, nothing else changed) and shows what it found; a PDF that fails
      // is refused before anything is asked. One too large to travel (the digest path) cannot be checked:
      // the warning says so instead.
      const checked: Promise<PdfInspection | null> =
        prompt.format === "pades" && !prompt.unchecked ? inspectPrepared(prompt.data) : Promise.resolve(null);
      checked
        .then(
          (pdf) => ui.ask(prompt, abort.signal, pdf),
          (e: unknown): PhoneAnswer => {
            const why = e instanceof Failure ? e.message : String(e);
            const failure = new Failure("invalid_input", `the computer's PDF failed the phone's check: ${why}; nothing was signed`);
            ui.notice("refused", failure.message);
            return { kind: "failed", failure };
          },
        )
        .then(
        (answer) => {
          if (prompting?.id === prompt.id) prompting = null;
          if (done || answer === null) return;
          if (session.isWithdrawn(prompt.id)) {
            ui.notice("late", "the computer withdrew this request before you answered; nothing was sent");
            return;
          }
          try {
            const frames = session.answer(prompt.id, answer);
            if (answer.kind === "approved") summary.signed++;
            if (answer.kind === "declined") summary.declined++;
            run(frames);
          } catch (e) {
            ui.notice("late", e instanceof Error ? e.message : String(e));
          }
        },
        (e: unknown) => run(session.fail(e instanceof Failure ? e : new Failure("internal", String(e)))),
      );
    };
    // The join request goes out once: over the challenge's nonce, or over one asked for when no challenge
    // came in time (then a challenge that arrives late, before the relay's answer, is passed over).
    let sentJoin = false;
    let fellBack = false;
    let answered = false;
    const sendJoin = (nonce: Promise<Uint8Array>) => {
      sentJoin = true;
      clearTimeout(fallbackTimer);
      nonce
        .then((n) => joiner.join(n))
        .then((json) => !done && ws.send(json))
        .catch((e: unknown) => finish(e instanceof Failure ? e : new Failure("internal", String(e))));
    };
    const fallback = joiner.fallbackNonce;
    let fallbackTimer: ReturnType<typeof setTimeout> | undefined;
    if (fallback) {
      ws.addEventListener("open", () => {
        fallbackTimer = setTimeout(() => {
          if (done || sentJoin) return;
          fellBack = true;
          sendJoin(fallback());
        }, joiner.waitMs ?? CHALLENGE_WAIT_MS);
      });
    }
    ws.addEventListener("message", (ev) => {
      if (done) return;
      const data = ev.data;
      if (typeof data === "string") {
        let event;
        try {
          event = parseTunnelEvent(data);
        } catch (e) {
          finish(e instanceof Failure ? e : new Failure("unavailable", "the relay sent something that is not a tunnel event"));
          return;
        }
        if (event.event === "challenge" && !sentJoin) {
          let nonce: Uint8Array;
          try {
            nonce = checkNonce(event.nonce);
          } catch (e) {
            finish(e instanceof Failure ? e : new Failure("unavailable", "the relay sent a malformed nonce"));
            return;
          }
          sendJoin(Promise.resolve(nonce));
          return;
        }
        if (event.event === "challenge" && fellBack && !answered) {
          // The relay's challenge, later than the phone waited: the join request already went out.
          fellBack = false;
          return;
        }
        if (!sentJoin && event.event !== "error") {
          finish(new Failure("unavailable", "the relay did not send the join's challenge first"));
          return;
        }
        answered = true;
        // A second challenge goes to the session, which ends on it.
        run(session.onEvent(event));
      } else if (data instanceof ArrayBuffer) {
        run(session.onFrame(new Uint8Array(data)));
      } else if (ArrayBuffer.isView(data)) {
        run(session.onFrame(new Uint8Array(data.buffer, data.byteOffset, data.byteLength)));
      }
    });
    // A socket that never opened is a relay that cannot be reached (no network, a wrong address, the relay
    // down): said so, with its address and what to do, rather than as a broken tunnel.
    let opened = false;
    ws.addEventListener("open", () => {
      opened = true;
    });
    const unreachable = () => new Unreachable("relay", joiner.relay ?? "its address");
    ws.addEventListener("close", () =>
      finish(session.closed ? null : opened ? new Failure("unavailable", "the relay closed the tunnel") : unreachable()),
    );
    ws.addEventListener("error", () => finish(opened ? new Failure("unavailable", "the tunnel broke") : unreachable()));
  });
}
