// Links and QR texts the app opens: a registration office's enrolment link.

import { b64url, fromUtf8 } from "../protocol/bytes.js";
import { checkEndpoint } from "../phone/http.js";

/** What an enrolment link or QR from the registration office carries: `kalit-enrol:` + base64url JSON. */
export function parseEnrolment(text: string): { ra: string; code: string } | null {
  if (!text.startsWith("kalit-enrol:") || text.length > 2048) return null;
  const raw = b64url.decode(text.slice("kalit-enrol:".length));
  const json = raw ? fromUtf8(raw) : null;
  try {
    const v = json ? (JSON.parse(json) as { v?: unknown; ra?: unknown; code?: unknown }) : null;
    if (v?.v !== 1 || typeof v.ra !== "string" || typeof v.code !== "string" || v.code.length > 64) return null;
    return { ra: checkEndpoint(v.ra, "registration office"), code: v.code };
  } catch {
    return null;
  }
}

