//! Revocation of the certificates that register, and of registered devices' certificates at every device
//! request and tunnel join: a certificate naming a CRL distribution point (`http://` or `https://`) is
//! checked against that CRL before its proof (or its device's signature) counts. CRLs are fetched on
//! first use and kept until their nextUpdate (at most a day), one fetch at a time per URL; a certificate
//! whose CRL cannot be had is answered `unavailable` (retry later), never accepted unchecked.

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

struct Cached {
    der: Arc<Vec<u8>>,
    until: OffsetDateTime,
}

/// The relay's CRL cache.
pub struct Revocation {
    http: reqwest::Client,
    cache: Mutex<HashMap<String, Cached>>,
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
        Revocation { http, cache: Mutex::new(HashMap::new()) }
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
        self.check_chain(leaf, pool, anchors, now).await
    }

    /// [`check`](Self::check) for a certificate and the chain it came with (a registered device's, at a
    /// later device request or tunnel join).
    pub async fn check_chain(
        &self,
        leaf: Vec<u8>,
        pool: Vec<Vec<u8>>,
        anchors: &Arc<Vec<Vec<u8>>>,
        now: OffsetDateTime,
    ) -> Result<(), ServiceError> {
        let urls = x509::crl_urls(&leaf);
        if urls.is_empty() {
            return Ok(());
        }
        let mut crls = vec![];
        let mut last_err = None;
        for u in urls.iter().take(4) {
            match self.crl(u, now).await {
                Ok(c) => crls.push(c.as_ref().clone()),
                Err(e) => last_err = Some(e),
            }
        }
        if crls.is_empty() {
            return Err(last_err.unwrap_or_else(|| unavailable(&urls[0], "no usable URL")));
        }
        let anchors = anchors.clone();
        tokio::task::spawn_blocking(move || x509::check_chain_revocation(&leaf, &pool, &anchors, now, &crls, None))
            .await
            .map_err(|e| ServiceError::internal(format!("worker: {e}")))??;
        Ok(())
    }

    async fn crl(&self, url: &str, now: OffsetDateTime) -> Result<Arc<Vec<u8>>, ServiceError> {
        // One lock for the lookup and the fetch: concurrent registrations under one CA fetch its CRL once.
        let mut cache = self.cache.lock().await;
        if let Some(c) = cache.get(url)
            && c.until > now
        {
            return Ok(c.der.clone());
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
        Ok(der)
    }
}
