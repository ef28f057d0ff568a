// The session's channel (kalit_core::session::Channel): JSON messages split into Noise transport
// messages of at most 65,535 bytes whose first plaintext byte is 1 when more follow and 0 on the last.
// Any bad frame breaks the channel for good.

import { fromUtf8, utf8 } from "./bytes.js";
import { Failure } from "./errors.js";
import { MAX_NOISE_MESSAGE, NoiseError, type Transport } from "./noise.js";
import { sasOf } from "./qr.js";
import { type ChannelMessage, type DocumentSupport, parseChannelMessage, serializeChannelMessage } from "./wire.js";

export const MAX_FRAME = MAX_NOISE_MESSAGE;
export const MAX_DOCUMENT = 8 * 1024 * 1024;
export const MAX_CHANNEL_MESSAGE = Math.floor(MAX_DOCUMENT / 3) * 4 + 64 * 1024;
/** Largest document a phone takes whole by default, in parts (kalit_proto::session::MAX_WHOLE_DOCUMENT). */
export const MAX_WHOLE_DOCUMENT = 64 * 1024 * 1024;
/** Document bytes in one `document_part`. */
export const DOCUMENT_PART = 1024 * 1024;
/** The first bytes of a document a phone shows (and receives, on the digest path), at most. */
export const PREVIEW_LEN = 64 * 1024;

/**
 * What a hello's offer (or its absence: the first phones) means (kalit_proto DocumentSupport::effective):
 * the largest document the phone takes whole, never less than MAX_DOCUMENT, and whether it signs by digest.
 */
export function effectiveDocuments(offer: DocumentSupport | null | undefined): DocumentSupport {
  return { whole: Math.max(offer?.whole ?? 0, MAX_DOCUMENT), digest: offer?.digest ?? false };
}
const TAG_LEN = 16;
const CHUNK = MAX_FRAME - TAG_LEN - 1;
const FLAG_MORE = 1;
const FLAG_LAST = 0;
const EMPTY = new Uint8Array(0);

const channelError = (m: string) => new Failure("channel", m);

export class Channel {
  readonly sas: string;
  #t: Transport;
  #partial: Uint8Array[] = [];
  #partialLen = 0;
  #broken = false;

  constructor(transport: Transport) {
    this.#t = transport;
    this.sas = sasOf(transport.handshakeHash);
  }

  seal(m: ChannelMessage): Uint8Array[] {
    if (this.#broken) throw channelError("the channel already failed");
    const json = utf8(serializeChannelMessage(m));
    if (json.length > MAX_CHANNEL_MESSAGE) throw new Failure("invalid_input", "message too large for the channel");
    const frames: Uint8Array[] = [];
    const count = Math.max(1, Math.ceil(json.length / CHUNK));
    for (let i = 0; i < count; i++) {
      const chunk = json.subarray(i * CHUNK, (i + 1) * CHUNK);
      const plain = new Uint8Array(chunk.length + 1);
      plain[0] = i + 1 === count ? FLAG_LAST : FLAG_MORE;
      plain.set(chunk, 1);
      frames.push(this.#t.send.encrypt(EMPTY, plain));
      plain.fill(0);
    }
    json.fill(0);
    return frames;
  }

  /** A whole message once its last frame arrived, `null` while more are to come. */
  open(frame: Uint8Array): ChannelMessage | null {
    try {
      return this.#open(frame);
    } catch (e) {
      this.#broken = true;
      this.#forget();
      if (e instanceof NoiseError) {
        throw channelError(`the secure channel failed (${e.message}): the QR, the relay or a frame was altered`);
      }
      throw e;
    }
  }

  #open(frame: Uint8Array): ChannelMessage | null {
    if (this.#broken) throw channelError("the channel already failed");
    if (frame.length <= TAG_LEN || frame.length > MAX_FRAME) throw channelError(`frame of ${frame.length} bytes`);
    const plain = this.#t.recv.decrypt(EMPTY, frame);
    if (plain.length === 0) throw channelError("empty frame");
    const flag = plain[0];
    const chunk = plain.subarray(1);
    if (this.#partialLen + chunk.length > MAX_CHANNEL_MESSAGE) throw channelError("message larger than the channel limit");
    this.#partial.push(chunk);
    this.#partialLen += chunk.length;
    if (flag === FLAG_MORE) return null;
    if (flag !== FLAG_LAST) throw channelError("bad frame flag");
    const whole = new Uint8Array(this.#partialLen);
    let i = 0;
    for (const p of this.#partial) {
      whole.set(p, i);
      i += p.length;
    }
    this.#forget();
    const text = fromUtf8(whole);
    whole.fill(0);
    if (text === null) throw channelError("malformed message: not UTF-8");
    return parseChannelMessage(text);
  }

  #forget(): void {
    for (const p of this.#partial) p.fill(0);
    this.#partial = [];
    this.#partialLen = 0;
  }

  /** The session is over: the keys are forgotten. */
  close(): void {
    this.#broken = true;
    this.#forget();
    this.#t.send.wipe();
    this.#t.recv.wipe();
  }
}

/** A message sealed into frames on a side's channel (there is none before the handshake). */
export function sealFrames(channel: Channel | null, m: ChannelMessage): { kind: "send"; frame: Uint8Array }[] {
  if (!channel) throw new Failure("channel", "no channel");
  return channel.seal(m).map((frame) => ({ kind: "send", frame }) as const);
}

/** The goodbye frames on a side's channel; none before the handshake or once the channel failed. */
export function goodbyeFrames(channel: Channel | null, reason: string, failure: Failure | null): { kind: "send"; frame: Uint8Array }[] {
  if (!channel) return [];
  try {
    return sealFrames(channel, { type: "bye", reason, code: failure ? failure.code : null });
  } catch {
    return [];
  }
}
