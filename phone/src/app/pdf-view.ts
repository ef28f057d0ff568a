// The pages of a PDF the person is asked to sign, drawn by pdf.js: a file of its own (pdf-view.js, with
// its worker pdf.worker.js), loaded only when a PDF is to be signed. The PDF may come from a lying
// computer: pdf.js runs without eval and without scripting, fetches nothing (no font or CMap URLs: a font
// the PDF does not embed is drawn with the phone's own), and everything here is drawn on canvases; its
// text goes into the page as text, never as markup. The phone's own check (protocol/pdf.ts) has already
// refused a PDF whose new revision changes more than the signature field.

import { GlobalWorkerOptions, getDocument } from "pdfjs-dist";

GlobalWorkerOptions.workerSrc = new URL("./pdf.worker.js", import.meta.url).href;

/** At most this many pages are drawn; the rest are counted. */
export const MAX_DRAWN = 20;

export interface Drawn {
  pages: number;
  drawn: number;
  /** The text of the first page, as pdf.js reads it (at most 2,000 characters). */
  firstPageText: string;
}

/**
 * Draws the first pages of `data` into `into` (one canvas each, `width` CSS pixels wide, labelled for
 * screen readers by `label(n)`), and reads the first page's text.
 */
export async function drawPages(data: Uint8Array, into: HTMLElement, width: number, label: (n: number) => string, signal: AbortSignal): Promise<Drawn> {
  const task = getDocument({
    data: data.slice(),
    isEvalSupported: false,
    enableXfa: false,
    disableAutoFetch: true,
    disableStream: true,
    useSystemFonts: true,
    stopAtErrors: false,
  });
  signal.addEventListener("abort", () => void task.destroy());
  const doc = await task.promise;
  try {
    const drawn = Math.min(doc.numPages, MAX_DRAWN);
    let firstPageText = "";
    for (let n = 1; n <= drawn && !signal.aborted; n++) {
      const page = await doc.getPage(n);
      const base = page.getViewport({ scale: 1 });
      const ratio = Math.min(window.devicePixelRatio || 1, 2);
      const viewport = page.getViewport({ scale: (width / base.width) * ratio });
      const canvas = document.createElement("canvas");
      canvas.width = Math.floor(viewport.width);
      canvas.height = Math.floor(viewport.height);
      canvas.style.width = `${width}px`;
      canvas.className = "pdf-page";
      canvas.setAttribute("role", "img");
      canvas.setAttribute("aria-label", label(n));
      canvas.dataset["page"] = String(n);
      into.append(canvas);
      await page.render({ canvas, viewport }).promise;
      if (n === 1) {
        const content = await page.getTextContent();
        firstPageText = content.items
          .map((i) => ("str" in i ? i.str : ""))
          .join(" ")
          .replace(/\s+/g, " ")
          .trim()
          .slice(0, 2000);
      }
      page.cleanup();
    }
    return { pages: doc.numPages, drawn, firstPageText };
  } finally {
    void doc.destroy();
  }
}
