// The PFX code, loaded only when the person imports or exports a PFX (dist/pfx.js; -legacy files load
// node-forge from dist/pfx-legacy.js on top).
export { exportPfx, importPfx } from "../protocol/pfx.js";
