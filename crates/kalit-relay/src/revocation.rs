//! Revocation of the certificates that register, and of registered devices' certificates at every device
//! request and tunnel join: a certificate naming a CRL distribution point (`http://` or `https://`) is
//! checked against that CRL before its proof (or its device's signature) counts. CRLs are fetched on
//! first use and kept until their nextUpdate (at most a day), one fetch at a time per URL; a certificate
//! whose CRL cannot be had is answered `unavailable` (retry later), never accepted unchecked.
//!
//! A chain that passed is remembered with the very CRLs it was checked against (the same cached copies,
//! not an equal download) and until the first of its certificates or of those CRLs expires, so a device's
//! every tunnel join does not validate its path again. A new CRL, a clock before the check, or a
//! certificate's end makes the next request validate afresh. The CRL addresses a certificate names are
//! read from it once and remembered under the same digest as its verdict.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use kalit_core::x509;
use kalit_proto::ErrorCode;
use kalit_proto::relay::CertProof;
use kalit_service::ServiceError;
use time::OffsetDateTime;
use tokio::sync::Mutex;

/// Largest CRL fetched.
const MAX_CRL: usize = 16 << 20;
/// Longest a CRL is kept, whatever its nextUpdate says.
const MAX_KEEP: time::Duration = time::Duration::minutes(15);
/// Most CRL URLs kept (a stranger's certificates could name many).
const MAX_URLS: usize = 1024;
/// Most chain verdicts kept (one per registered certificate in use; about 100 bytes each).
const MAX_VERDICTS: usize = 65_536;
/// Most certificates whose CRL addresses are kept (one per registered certificate in use).
const MAX_LEAVES: usize = 65_536;

struct Cached {
    der: Arc<Vec<u8>>,
    until: OffsetDateTime,
}

/// A chain that passed its revocation check: under these CRLs and these anchors, from `from` until `until`.
struct Verdict {
    crls: Vec<Arc<Vec<u8>>>,
    anchors: Arc<Vec<Vec<u8>>>,
    from: OffsetDateTime,
    until: OffsetDateTime,
}

/// The relay's CRL cache, and the chains that passed under the cached CRLs.
pub struct Revocation {
    http: reqwest::Client,
    cache: Mutex<HashMap<String, Cached>>,
    /// Keyed by SHA-256 over the leaf and the chain it came with, each length-prefixed.
    verdicts: std::sync::Mutex<HashMap<[u8; 32], Verdict>>,
    /// The CRL addresses each certificate names, under its chain's key (as `verdicts`): read once, not at
    /// every join.
    urls: std::sync::Mutex<HashMap<[u8; 32], Arc<[String]>>>,
}

impl std::fmt::Debug for Revocation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Revocation").finish_non_exhaustive()
    }
}

impl Default for Revocation {
    fn default() -> Self {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .connect_timeout(Duration::from_secs(5))
            .user_agent(concat!("kalit-relay/", env!("CARGO_PKG_VERSION")))
            .build()
            .unwrap_or_default();
        Revocation { http, cache: Mutex::new(HashMap::new()), verdicts: Default::default(), urls: Default::default() }
    }
}

fn unavailable(url: &str, why: impl std::fmt::Display) -> ServiceError {
    ServiceError::new(
        ErrorCode::Unavailable,
        format!(
            "the relay cannot check whether the certificate was revoked (its CRL at {url}: {why}); try again later"
        ),
    )
}

impl Revocation {
    /// Checks the proof's certificate against the CRLs it names (none named: nothing to check). The
    /// chain itself was checked by the caller; this runs the same validation with the CRLs.
    pub async fn check(
        &self,
        proof: &CertProof,
        anchors: &Arc<Vec<Vec<u8>>>,
        now: OffsetDateTime,
    ) -> Result<(), ServiceError> {
        let (leaf, pool) = kalit_core::statement::proof_chain(proof)?;
        self.check_chain(&leaf, &pool, anchors, now).await
    }

    /// [`check`](Self::check) for a certificate and the chain it came with (a registered device's, at a
    /// later device request or tunnel join). They are copied only when the chain is validated afresh.
    pub async fn check_chain(
        &self,
        leaf: &[u8],
        pool: &[Vec<u8>],
        anchors: &Arc<Vec<Vec<u8>>>,
        now: OffsetDateTime,
    ) -> Result<(), ServiceError> {
        let key = chain_key(leaf, pool);
        let urls = self.crl_urls(&key, leaf);
        if urls.is_empty() {
            return Ok(());
        }
        let mut crls = vec![];
        let mut crls_until = now + MAX_KEEP;
        let mut last_err = None;
        for u in urls.iter().take(4) {
            match self.crl(u, now).await {
                Ok((c, until)) => {
                    crls.push(c);
                    crls_until = crls_until.min(until);
                }
                Err(e) => last_err = Some(e),
            }
        }
        if crls.is_empty() {
            return Err(last_err.unwrap_or_else(|| unavailable(&urls[0], "no usable URL")));
        }
        if self.passed(&key, &crls, anchors, now) {
            return Ok(());
        }
        let anchors = anchors.clone();
        let held = crls.clone();
        let checked = anchors.clone();
        let (leaf, pool) = (leaf.to_vec(), pool.to_vec());
        let until = tokio::task::spawn_blocking(move || {
            let crls: Vec<Vec<u8>> = held.iter().map(|c| c.as_ref().clone()).collect();
            x509::check_chain_revocation(&leaf, &pool, &checked, now, &crls, None)?;
            // Valid until the first certificate that came with the chain ends (the path used is among them).
            Ok::<_, kalit_core::CoreError>(
                std::iter::once(&leaf)
                    .chain(&pool)
                    .filter_map(|c| x509::parse(c).ok().map(|c| c.validity().not_after.to_datetime()))
                    .fold(crls_until, OffsetDateTime::min),
            )
        })
        .await
        .map_err(|e| ServiceError::internal(format!("worker: {e}")))??;
        self.remember(key, Verdict { crls, anchors, from: now, until }, now);
        Ok(())
    }

    /// The CRL addresses `leaf` names, parsed at its first check and then remembered under `key`, its
    /// chain's key.
    fn crl_urls(&self, key: &[u8; 32], leaf: &[u8]) -> Arc<[String]> {
        let mut known = self.urls.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(u) = known.get(key) {
            return u.clone();
        }
        if known.len() >= MAX_LEAVES {
            known.clear();
        }
        let urls: Arc<[String]> = x509::crl_urls(leaf).into();
        known.insert(*key, urls.clone());
        urls
    }

    /// How many certificates' CRL addresses are remembered.
    pub fn known_certificates(&self) -> usize {
        self.urls.lock().unwrap_or_else(std::sync::PoisonError::into_inner).len()
    }

    /// How many chains are remembered as passed.
    pub fn verdicts(&self) -> usize {
        self.verdicts_lock().len()
    }

    fn verdicts_lock(&self) -> std::sync::MutexGuard<'_, HashMap<[u8; 32], Verdict>> {
        self.verdicts.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Whether this chain passed under these same CRLs and anchors, at a time that still holds.
    fn passed(&self, key: &[u8; 32], crls: &[Arc<Vec<u8>>], anchors: &Arc<Vec<Vec<u8>>>, now: OffsetDateTime) -> bool {
        self.verdicts_lock().get(key).is_some_and(|v| {
            v.from <= now
                && now < v.until
                && Arc::ptr_eq(&v.anchors, anchors)
                && v.crls.len() == crls.len()
                && v.crls.iter().zip(crls).all(|(a, b)| Arc::ptr_eq(a, b))
        })
    }

    fn remember(&self, key: [u8; 32], v: Verdict, now: OffsetDateTime) {
        let mut verdicts = self.verdicts_lock();
        if verdicts.len() >= MAX_VERDICTS {
            verdicts.retain(|_, v| v.from <= now && now < v.until);
            if verdicts.len() >= MAX_VERDICTS {
                verdicts.clear();
            }
        }
        verdicts.insert(key, v);
    }

    /// The CRL at `url` and until when the cached copy serves.
    async fn crl(&self, url: &str, now: OffsetDateTime) -> Result<(Arc<Vec<u8>>, OffsetDateTime), ServiceError> {
        // One lock for the lookup and the fetch: concurrent registrations under one CA fetch its CRL once.
        let mut cache = self.cache.lock().await;
        if let Some(c) = cache.get(url)
            && c.until > now
        {
            return Ok((c.der.clone(), c.until));
        }
        if !(url.starts_with("http://") || url.starts_with("https://")) {
            return Err(unavailable(url, "not an http(s) URL"));
        }
        let resp = self.http.get(url).send().await.map_err(|e| unavailable(url, e))?;
        if !resp.status().is_success() {
            return Err(unavailable(url, format!("HTTP {}", resp.status())));
        }
        if resp.content_length().is_some_and(|n| n > MAX_CRL as u64) {
            return Err(unavailable(url, "larger than 16 MiB"));
        }
        let body = resp.bytes().await.map_err(|e| unavailable(url, e))?;
        if body.len() > MAX_CRL || !x509::is_crl(&body) {
            return Err(unavailable(url, "not a DER CRL"));
        }
        let until = x509::crl_next_update(&body).unwrap_or(now).min(now + MAX_KEEP);
        let der = Arc::new(body.to_vec());
        if cache.len() >= MAX_URLS {
            cache.retain(|_, c| c.until > now);
            if cache.len() >= MAX_URLS {
                cache.clear();
            }
        }
        cache.insert(url.to_owned(), Cached { der: der.clone(), until });
        tracing::info!(url, "CRL fetched");
        Ok((der, until))
    }
}

/// SHA-256 over the leaf and each certificate of its chain, each preceded by its length.
fn chain_key(leaf: &[u8], pool: &[Vec<u8>]) -> [u8; 32] {
    use kalit_core::digest::{HashAlg, Hasher};
    let mut h = Hasher::new(HashAlg::Sha256);
    for c in std::iter::once(leaf).chain(pool.iter().map(Vec::as_slice)) {
        h.update(&(c.len() as u64).to_be_bytes());
        h.update(c);
    }
    let mut key = [0u8; 32];
    key.copy_from_slice(&h.finish());
    key
}
