// The app's service worker: the app shell is cached when installed, so Kalit opens offline; every
// request under /app/ goes to the network first (updates arrive at once) and falls back to the cache.
// Nothing else is cached: no API answers, no documents.

declare const __KALIT_VERSION__: string;
declare const __KALIT_FILES__: string[];
/** Every file of the app (the scanner's too), cached when fetched. */
declare const __KALIT_ALL__: string[];

interface SwScope {
  addEventListener(type: "install", l: (e: { waitUntil(p: Promise<unknown>): void }) => void): void;
  addEventListener(type: "activate", l: (e: { waitUntil(p: Promise<unknown>): void }) => void): void;
  addEventListener(type: "fetch", l: (e: { request: Request; respondWith(r: Promise<Response>): void }) => void): void;
  skipWaiting(): Promise<void>;
  clients: { claim(): Promise<void> };
  registration: { scope: string };
}
const sw = self as unknown as SwScope;
const CACHE = `kalit-app-${__KALIT_VERSION__}`;

sw.addEventListener("install", (e) => {
  e.waitUntil(
    caches
      .open(CACHE)
      .then((c) => c.addAll(__KALIT_FILES__.map((f) => new URL(f, sw.registration.scope).toString())))
      .then(() => sw.skipWaiting()),
  );
});

sw.addEventListener("activate", (e) => {
  e.waitUntil(
    caches
      .keys()
      .then((names) => Promise.all(names.filter((n) => n.startsWith("kalit-app-") && n !== CACHE).map((n) => caches.delete(n))))
      .then(() => sw.clients.claim()),
  );
});

sw.addEventListener("fetch", (e) => {
  const req = e.request;
  const url = new URL(req.url);
  if (req.method !== "GET" || !url.href.startsWith(sw.registration.scope)) return;
  e.respondWith(
    fetch(req).then(
      (resp) => {
        if (resp.ok && __KALIT_ALL__.some((f) => new URL(f, sw.registration.scope).pathname === url.pathname)) {
          const copy = resp.clone();
          void caches.open(CACHE).then((c) => c.put(req, copy));
        }
        return resp;
      },
      async () => (await caches.match(req, { ignoreSearch: true })) ?? (await caches.match(new URL("./", sw.registration.scope).toString())) ?? Response.error(),
    ),
  );
});
