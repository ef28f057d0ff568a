// Scanning the computer's QR with the phone's camera: the browser's BarcodeDetector where it has one
// (Android Chrome), otherwise zxing-wasm, whose WebAssembly comes from the relay (never from a CDN).
// Loaded only when the person scans (dist/scanner.js and dist/zxing_reader.wasm).

import { prepareZXingModule, readBarcodes } from "zxing-wasm/reader";

import { Failure } from "../protocol/errors.js";

interface Detected {
  rawValue: string;
}
interface BarcodeDetectorLike {
  detect(source: HTMLVideoElement): Promise<Detected[]>;
}
type DetectorCtor = new (o: { formats: string[] }) => BarcodeDetectorLike;

let prepared = false;
function prepareZxing(): void {
  if (prepared) return;
  prepareZXingModule({
    overrides: {
      locateFile: (path: string, prefix: string) => (path.endsWith(".wasm") ? new URL("./zxing_reader.wasm", import.meta.url).href : prefix + path),
    },
  });
  prepared = true;
}

/** Why the camera could not be used, as a failure with a stable code. */
function cameraFailure(e: unknown): Failure {
  const name = e instanceof DOMException ? e.name : "";
  if (name === "NotAllowedError" || name === "SecurityError") return new Failure("declined", "camera-refused");
  if (name === "NotFoundError" || name === "OverconstrainedError") return new Failure("not_found", "camera-missing");
  return new Failure("unavailable", `camera: ${e instanceof Error ? e.message : String(e)}`);
}

/** A computer's signing QR, or a registration office's enrolment QR (links.ts). */
const isKalit = (t: string) => t.startsWith("kalit:") || t.startsWith("kalit-enrol:");

/** Shows the camera in `video` until a Kalit QR is seen; its text. */
export async function scanQr(video: HTMLVideoElement, signal: AbortSignal): Promise<string> {
  if (!navigator.mediaDevices?.getUserMedia) throw new Failure("not_found", "camera-missing");
  let stream: MediaStream;
  try {
    stream = await navigator.mediaDevices.getUserMedia({ video: { facingMode: "environment" }, audio: false });
  } catch (e) {
    throw cameraFailure(e);
  }
  try {
    video.srcObject = stream;
    await video.play();
    const Ctor = (globalThis as unknown as { BarcodeDetector?: DetectorCtor }).BarcodeDetector;
    const detector = Ctor ? new Ctor({ formats: ["qr_code"] }) : null;
    const canvas = document.createElement("canvas");
    const g = canvas.getContext("2d", { willReadFrequently: true });
    while (!signal.aborted) {
      if (video.videoWidth > 0) {
        if (detector) {
          const hit = (await detector.detect(video)).find((c) => isKalit(c.rawValue));
          if (hit) return hit.rawValue;
        } else if (g) {
          canvas.width = video.videoWidth;
          canvas.height = video.videoHeight;
          g.drawImage(video, 0, 0);
          prepareZxing();
          const found = await readBarcodes(g.getImageData(0, 0, canvas.width, canvas.height), {
            formats: ["QRCode"],
            tryHarder: true,
            maxNumberOfSymbols: 1,
          });
          const hit = found.find((r) => r.isValid && isKalit(r.text));
          if (hit) return hit.text;
        }
      }
      await new Promise((r) => setTimeout(r, 150));
    }
    throw new Failure("declined", "scanning stopped");
  } finally {
    for (const t of stream.getTracks()) t.stop();
    video.srcObject = null;
  }
}
