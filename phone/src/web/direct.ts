// kalit.js direct mode (web/kalit-direct.js, loaded by kalit.js only when it is needed): the page plays
// the agent's part itself. It makes a fresh X25519 key and QR secret, waits on the relay's tunnel over a
// WebSocket (the browser sends the page's Origin, and the relay vouches for it to the phone), answers the
// phone's Noise handshake, checks the phone's hello against the relay's attestation, sends the document,
// and checks the signature against the phone's certificate and the document before the promise resolves.
// The protocol code is the phone app's (src/protocol), held to the same vectors as the Rust core.

import { x25519 } from "@noble/curves/ed25519.js";
import { sha256 } from "@noble/hashes/sha2.js";
import { renderSVG } from "uqr";

import { type AgentAction, AgentSession, type Paired } from "../protocol/agent-session.js";
import { b64, toHex } from "../protocol/bytes.js";
import { type RelayIdentity, checkRelayIdentity } from "../protocol/ceremony.js";
import { MAX_DOCUMENT } from "../protocol/channel.js";
import { Failure } from "../protocol/errors.js";
import { QR_TTL_MAX_SECS, Qr } from "../protocol/qr.js";
import { checkCms, checkRaw } from "../protocol/signature-check.js";
import { checkEndpoint } from "../phone/http.js";
import { WELL_KNOWN_PATH } from "../phone/relay.js";
import { parseTunnelEvent } from "../protocol/wire.js";
import { nameText, parseCertificate, pem } from "../protocol/x509.js";

export interface DirectRequest {
  data: Uint8Array;
  name: string;
  mediaType: string;
  format: "raw" | "cms";
  pss: boolean;
  /** The relay's base URL (https, or http on loopback). */
  relay: string;
  /** When set, the relay's id must be this one (pinned by the portal). */
  relayId?: string;
  ttl?: number;
  signal: AbortSignal;
  /**
   * The QR to show, its SVG drawing, when it expires (ms since the epoch), and the link that opens it in
   * the Kalit app on this very device.
   */
  onQr(info: { session: string; qr: string; qrSvg: string; expiresAt: number; relay: string; appUrl: string }): void;
  /** The phone paired and the relay's attestation checked: show the SAS. */
  onPaired(info: { session: string; sas: string; login: string; certificate: { subject: string } }): void;
  /** The document went to the phone. */
  onSigning(): void;
}

export interface DirectResult {
  format: "raw" | "cms";
  signature: Uint8Array;
  signatureBase64: string;
  scheme: string;
  sha256: string;
  certificatePem: string;
  signer: { subject: string; issuer: string; serial: string; not_before: string; not_after: string; sha256: string };
  login: string;
  mode: "direct";
  relay: string;
}

const now = () => Math.floor(Date.now() / 1000);

/** How often a page whose socket dropped tries to take its side back before it gives up. */
const RESUME_TRIES = 5;

/** The relay's base URL as given, checked: https, or http on this machine. */
export function relayBase(relay: string): string {
  return checkEndpoint(relay, "relay");
}

/** Relay identities this page read, by base URL, and when (read again after a few minutes). */
const identities = new Map<string, { at: number; id: string; key: Uint8Array; name: string }>();
const IDENTITY_KEPT_MS = 5 * 60_000;

/** Reads and checks the relay's identity (key and id agree; the pinned id when the portal gave one). */
export async function relayIdentity(base: string, pinned: string | undefined, signal: AbortSignal): Promise<{ id: string; key: Uint8Array; name: string }> {
  const kept = identities.get(base);
  if (kept && Date.now() - kept.at < IDENTITY_KEPT_MS && (pinned === undefined || pinned === kept.id)) return kept;
  let ident: RelayIdentity;
  try {
    const r = await fetch(base + WELL_KNOWN_PATH, { cache: "no-store", signal, credentials: "omit" });
    if (!r.ok) throw new Error(`HTTP ${r.status}`);
    ident = (await r.json()) as RelayIdentity;
  } catch (e) {
    if (signal.aborted) throw signal.reason;
    throw new Failure("unavailable", `the relay does not answer at ${base} (${e instanceof Error ? e.message : String(e)})`);
  }
  if (typeof ident?.relay_id !== "string" || typeof ident.public_key !== "string") {
    throw new Failure("unavailable", "the relay's identity is malformed");
  }
  const key = checkRelayIdentity(ident);
  if (pinned !== undefined && pinned !== ident.relay_id) {
    throw new Failure("unavailable", `the relay at ${base} is not the one this portal pinned (${pinned})`);
  }
  const r = { at: Date.now(), id: ident.relay_id, key, name: typeof ident.name === "string" ? ident.name : "" };
  identities.set(base, r);
  return r;
}

const iso = (secs: number) => new Date(secs * 1000).toISOString().replace(/\.000Z$/, "Z");

/** Runs one direct session: pairs, signs one document, checks it, ends. */
export async function signDirect(req: DirectRequest): Promise<DirectResult> {
  if (req.data.length > MAX_DOCUMENT) {
    throw new Failure("too_large", `documents travel to the phone up to ${MAX_DOCUMENT / 1024 / 1024} MiB`);
  }
  const base = relayBase(req.relay);
  const relay = await relayIdentity(base, req.relayId, req.signal);
  const secret = crypto.getRandomValues(new Uint8Array(16));
  const staticKey = x25519.utils.randomSecretKey();
  const ttl = Math.min(Math.max(req.ttl ?? 60, 10), QR_TTL_MAX_SECS);
  const qr = Qr.forPage({
    publicKey: x25519.getPublicKey(staticKey),
    secret,
    relay: base,
    relayId: relay.id,
    origin: location.origin,
    ttl,
    nowSecs: now(),
  });
  secret.fill(0);
  const session = new AgentSession(qr, staticKey, { relayId: relay.id, relayPublicKey: relay.key });
  staticKey.fill(0);
  const id = toHex(crypto.getRandomValues(new Uint8Array(8)));
  // A phone's browser may freeze this tab while the person is in the Kalit app (same device): the socket
  // then drops, and the relay keeps the tunnel for this page, which comes back with this secret (the
  // relay knows only its hash; each use names the next).
  let resumeSecret = crypto.getRandomValues(new Uint8Array(32));
  const tunnelUrl = `${base.replace(/^http/, "ws")}/v1/tunnel/${qr.tunnelId()}`;
  let ws = new WebSocket(`${tunnelUrl}/wait?ttl=${ttl}&resume=${toHex(sha256(resumeSecret))}`);

  return new Promise<DirectResult>((resolve, reject) => {
    let done = false;
    let pairedWith: Paired | null = null;
    let checking = false;
    const cleanups: (() => void)[] = [];
    const finish = (e: unknown, result?: DirectResult) => {
      if (done) return;
      done = true;
      req.signal.removeEventListener("abort", onAbort);
      for (const c of cleanups) c();
      resumeSecret.fill(0);
      // The relay closes both ends once the goodbye went through; close ours too.
      setTimeout(() => ws.close(1000), 200);
      if (result) resolve(result);
      else reject(e);
    };
    const send = (frames: AgentAction[]) => {
      for (const a of frames) run(a);
    };
    const run = (a: AgentAction) => {
      switch (a.kind) {
        case "send":
          if (ws.readyState === WebSocket.OPEN) ws.send(a.frame);
          break;
        case "paired": {
          pairedWith = a.paired;
          const leaf = parseCertificate(a.paired.chain[0]!);
          req.onPaired({ session: id, sas: a.paired.sas, login: a.paired.login, certificate: { subject: nameText(leaf.subject) } });
          let out: { id: number; actions: AgentAction[] };
          try {
            out = session.sign({ data: req.data, name: req.name, mediaType: req.mediaType, format: req.format, pss: req.pss });
          } catch (e) {
            send(session.fail(e instanceof Failure ? e : new Failure("internal", String(e))));
            return;
          }
          req.onSigning();
          send(out.actions);
          break;
        }
        case "answer":
          if (a.failure) {
            // The page learns why first; the goodbye follows (its closing action finds the promise settled).
            finish(a.failure);
            send(session.end("the phone did not sign"));
            return;
          }
          // The phone may leave right after its answer (the app closes its tab on the same device): the
          // session's end must not overtake the check of the answer.
          checking = true;
          void check(a.signature!);
          break;
        case "lateAnswerRefused":
          break;
        case "closed":
          if (!checking) finish(a.failure ?? new Failure("expired", "the session ended before a signature"));
          break;
      }
    };
    const check = async (signature: Uint8Array) => {
      const p = pairedWith!;
      const leafDer = p.chain[0]!;
      try {
        const scheme =
          req.format === "raw" ? await checkRaw(req.data, signature, leafDer, req.pss) : await checkCms(req.data, signature, leafDer);
        const leaf = parseCertificate(leafDer);
        const result: DirectResult = {
          format: req.format,
          signature,
          signatureBase64: b64.encode(signature),
          scheme,
          sha256: toHex(sha256(req.data)),
          certificatePem: pem("CERTIFICATE", leafDer),
          signer: {
            subject: nameText(leaf.subject),
            issuer: nameText(leaf.issuer),
            serial: leaf.serial,
            not_before: iso(leaf.notBefore),
            not_after: iso(leaf.notAfter),
            sha256: toHex(sha256(leafDer)),
          },
          login: p.login,
          mode: "direct",
          relay: base,
        };
        finish(null, result);
        send(session.end("signed"));
      } catch (e) {
        const f = e instanceof Failure ? e : new Failure("invalid_signature", String(e));
        finish(f);
        send(session.fail(f));
      }
    };
    const onAbort = () => {
      finish(req.signal.reason);
      send(session.end("the page cancelled"));
    };
    req.signal.addEventListener("abort", onAbort, { once: true });

    // Away: the socket dropped while paired; the page takes its side back when it is visible again.
    let away = false;
    let resuming = false;
    let tries = 0;
    const onMessage = (ev: MessageEvent) => {
      if (done) return;
      try {
        if (typeof ev.data === "string") {
          const e = parseTunnelEvent(ev.data);
          if (e.event === "resumed") {
            away = false;
            resuming = false;
            tries = 0;
          }
          send(session.onEvent(e));
        } else if (ev.data instanceof ArrayBuffer) send(session.onFrame(new Uint8Array(ev.data), now()));
      } catch (e) {
        const f = e instanceof Failure ? e : new Failure("unavailable", "the relay sent something that is not a tunnel event");
        finish(f);
        send(session.fail(f));
      }
    };
    const paired = () => session.phase === "pairing" || session.phase === "connected";
    const onClose = (sock: WebSocket) => (ev: CloseEvent) => {
      if (done || sock !== ws) return;
      if (session.phase === "waiting" && !ev.wasClean) {
        finish(new Failure("unavailable", `the relay at ${base} refused or dropped the session (it may not allow direct sessions from ${location.origin})`));
      } else if (paired()) {
        away = true;
        resuming = false;
        if (document.visibilityState === "visible") setTimeout(takeBack, tries === 0 ? 0 : 1000);
      } else finish(new Failure("unavailable", "the relay closed the tunnel"));
    };
    const attach = (sock: WebSocket) => {
      sock.binaryType = "arraybuffer";
      sock.addEventListener("message", onMessage);
      sock.addEventListener("close", onClose(sock));
    };
    const takeBack = () => {
      if (done || !away || resuming) return;
      if (++tries > RESUME_TRIES) {
        finish(new Failure("expired", "this page could not take its signing session back from the relay"));
        return;
      }
      resuming = true;
      const next = crypto.getRandomValues(new Uint8Array(32));
      const sock = new WebSocket(`${tunnelUrl}/resume`);
      ws = sock;
      attach(sock);
      sock.addEventListener("open", () => {
        sock.send(JSON.stringify({ resume: b64.encode(resumeSecret), next: toHex(sha256(next)) }));
        resumeSecret.fill(0);
        resumeSecret = next;
      });
    };
    // A frozen page reads nothing: its socket is closed on purpose (mobile browsers drop it anyway), and
    // the page takes its side back when it runs again.
    const onFreeze = () => {
      if (done || !paired() || ws.readyState !== WebSocket.OPEN) return;
      away = true;
      ws.close(1000, "frozen");
    };
    const onVisible = () => {
      if (document.visibilityState === "visible") takeBack();
    };
    document.addEventListener("freeze", onFreeze);
    document.addEventListener("resume", takeBack);
    document.addEventListener("visibilitychange", onVisible);
    cleanups.push(() => {
      document.removeEventListener("freeze", onFreeze);
      document.removeEventListener("resume", takeBack);
      document.removeEventListener("visibilitychange", onVisible);
    });
    attach(ws);
    ws.addEventListener("open", () => {
      req.onQr({
        session: id,
        qr: qr.text,
        qrSvg: renderSVG(qr.text, { ecc: "M", border: 2 }),
        expiresAt: Date.now() + ttl * 1000,
        relay: base,
        appUrl: `${base}/app/#${encodeURIComponent(qr.text)}`,
      });
    });
  });
}
