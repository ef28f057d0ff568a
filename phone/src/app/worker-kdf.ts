// Sends Argon2id to the worker (argon2-worker.js) and waits for its answer.

import { Failure } from "../protocol/errors.js";
import type { Argon2id } from "../protocol/seal.js";

export function workerArgon2id(url: string): Argon2id {
  let worker: Worker | null = null;
  let next = 1;
  const waiting = new Map<number, { resolve: (k: Uint8Array) => void; reject: (e: unknown) => void }>();
  const get = () => {
    if (worker) return worker;
    worker = new Worker(url, { type: "module" });
    worker.onmessage = (e: MessageEvent<{ id: number; key?: Uint8Array; error?: string }>) => {
      const w = waiting.get(e.data.id);
      waiting.delete(e.data.id);
      if (!w) return;
      if (e.data.key) w.resolve(new Uint8Array(e.data.key));
      else w.reject(new Failure("internal", `Argon2id failed: ${e.data.error ?? "no answer"}`));
    };
    worker.onerror = () => {
      for (const w of waiting.values()) w.reject(new Failure("internal", "the Argon2id worker stopped"));
      waiting.clear();
      worker = null;
    };
    return worker;
  };
  return (password, salt, k) =>
    new Promise((resolve, reject) => {
      const id = next++;
      waiting.set(id, { resolve, reject });
      const copy = password.slice();
      get().postMessage({ id, password: copy, salt, k }, [copy.buffer]);
    });
}
