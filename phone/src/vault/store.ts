// Where the app's vault lives: a key-value store of structured-clone values. The browser's is IndexedDB
// (one object store; a non-extractable CryptoKey is kept as it is, never as bytes); tests use memory.
// Every write is one transaction: a record is either the old or the new one, never half of each.

import { Failure } from "../protocol/errors.js";

export interface Store {
  get<T>(key: string): Promise<T | undefined>;
  put(key: string, value: unknown): Promise<void>;
  /** Several writes in one transaction. */
  putMany(entries: [string, unknown][]): Promise<void>;
  delete(key: string): Promise<void>;
  /** Keys starting with `prefix`, sorted. */
  keys(prefix: string): Promise<string[]>;
}

export class MemoryStore implements Store {
  readonly map = new Map<string, unknown>();

  async get<T>(key: string): Promise<T | undefined> {
    return structuredClone(this.map.get(key)) as T | undefined;
  }

  async put(key: string, value: unknown): Promise<void> {
    this.map.set(key, structuredClone(value));
  }

  async putMany(entries: [string, unknown][]): Promise<void> {
    for (const [k, v] of entries) this.map.set(k, structuredClone(v));
  }

  async delete(key: string): Promise<void> {
    this.map.delete(key);
  }

  async keys(prefix: string): Promise<string[]> {
    return [...this.map.keys()].filter((k) => k.startsWith(prefix)).sort();
  }
}

const DB = "kalit";

/** A failed write: `storage-full` for a quota error (the screens say it in the person's language). */
function storageFailure(e: DOMException | null): Failure {
  if (e?.name === "QuotaExceededError") return new Failure("io", "storage-full");
  return new Failure("io", `the phone's storage failed (${e?.name ?? "aborted"})`);
}
const OBJECTS = "vault";

function request<T>(r: IDBRequest<T>): Promise<T> {
  return new Promise((resolve, reject) => {
    r.onsuccess = () => resolve(r.result);
    r.onerror = () => reject(r.error);
  });
}

/** The browser's store: IndexedDB database `kalit`, object store `vault`. */
export class IndexedDbStore implements Store {
  private constructor(private readonly db: IDBDatabase) {}

  static async open(): Promise<IndexedDbStore> {
    const req = indexedDB.open(DB, 1);
    req.onupgradeneeded = () => {
      if (!req.result.objectStoreNames.contains(OBJECTS)) req.result.createObjectStore(OBJECTS);
    };
    return new IndexedDbStore(await request(req));
  }

  private tx(mode: IDBTransactionMode): { store: IDBObjectStore; done: Promise<void> } {
    const t = this.db.transaction(OBJECTS, mode, { durability: "strict" });
    const done = new Promise<void>((resolve, reject) => {
      t.oncomplete = () => resolve();
      t.onerror = () => reject(storageFailure(t.error));
      t.onabort = () => reject(storageFailure(t.error));
    });
    return { store: t.objectStore(OBJECTS), done };
  }

  /** Runs `write` in one read-write transaction: all of it is stored, or none (a request the browser
   * refuses at once, as some do when the disk is full, aborts the transaction too). */
  private async write(write: (s: IDBObjectStore) => void): Promise<void> {
    const { store, done } = this.tx("readwrite");
    try {
      write(store);
    } catch (e) {
      done.catch(() => undefined);
      try {
        store.transaction.abort();
      } catch {
        // Already finished: nothing of it was committed by this call.
      }
      throw storageFailure(e instanceof DOMException ? e : null);
    }
    await done;
  }

  async get<T>(key: string): Promise<T | undefined> {
    const { store } = this.tx("readonly");
    return (await request(store.get(key))) as T | undefined;
  }

  async put(key: string, value: unknown): Promise<void> {
    await this.putMany([[key, value]]);
  }

  async putMany(entries: [string, unknown][]): Promise<void> {
    await this.write((store) => {
      for (const [k, v] of entries) store.put(v, k);
    });
  }

  async delete(key: string): Promise<void> {
    await this.write((store) => store.delete(key));
  }

  async keys(prefix: string): Promise<string[]> {
    const { store } = this.tx("readonly");
    const all = (await request(store.getAllKeys())) as IDBValidKey[];
    return all.map(String).filter((k) => k.startsWith(prefix)).sort();
  }
}
