// Argon2id off the screen's thread: the app's PIN and passphrase derivations run here (hash-wasm).

import { type KdfParams, argon2idHere } from "../protocol/seal.js";

interface WorkerScope {
  onmessage: ((e: MessageEvent<{ id: number; password: Uint8Array; salt: Uint8Array; k: KdfParams }>) => void) | null;
  postMessage(message: unknown, transfer?: Transferable[]): void;
}
const scope = self as unknown as WorkerScope;

scope.onmessage = async (e) => {
  const { id, password, salt, k } = e.data;
  try {
    const key = await argon2idHere(password, salt, k);
    password.fill(0);
    scope.postMessage({ id, key }, [key.buffer]);
  } catch (err) {
    scope.postMessage({ id, error: err instanceof Error ? err.message : String(err) });
  }
};
