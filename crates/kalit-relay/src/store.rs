//! Persistence: one store interface, two backends (SQLite, the default, and PostgreSQL for several relay
//! nodes), each with its own migrations. Queries are runtime queries through sqlx's `Any` driver, written
//! in the SQL both databases accept; the conformance tests in `tests/` run against both.
//!
//! Invariants: a login is created by exactly one registration (its primary key decides races); a nonce is
//! consumed by exactly one request (a conditional delete decides races); every write is a transaction, so
//! a crash leaves the old or the new state; an answer that says something was written comes after its
//! commit.
//!
//! On SQLite (one writer, one fsync per commit) new logins and audit rows go through a group commit
//! ([`GroupCommit`]): what arrives while a transaction commits is written by the next one, together.
//! The audit rows of tunnel joins are gathered first, for up to a linger ([`AUDIT_LINGER`] unless the
//! relay's `audit_linger_ms` says otherwise), by one writer task
//! ([`AuditLog`], on both backends): a join does not wait for its row's commit.

use kalit_proto::ErrorCode;
use kalit_service::ServiceError;
use sqlx::any::{AnyPoolOptions, AnyRow};
use sqlx::migrate::Migrator;
use sqlx::{AnyPool, Row};

/// Which database is behind the store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// A SQLite file.
    Sqlite,
    /// A PostgreSQL server.
    Postgres,
}

impl Backend {
    /// `sqlite` or `postgres`.
    pub fn name(self) -> &'static str {
        match self {
            Backend::Sqlite => "sqlite",
            Backend::Postgres => "postgres",
        }
    }
}

/// A device row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceRow {
    /// Device id (hex).
    pub device_id: String,
    /// Login it belongs to.
    pub login: String,
    /// Raw Ed25519 public key.
    pub device_key: Vec<u8>,
    /// Name given at registration.
    pub name: String,
    /// Certificate it registered with (SHA-256 of DER, hex).
    pub cert_fingerprint: String,
    /// Subject of that certificate.
    pub cert_subject: String,
    /// That certificate, DER.
    pub cert_der: Vec<u8>,
    /// The certificates between it and a trust anchor as sent at registration; `None` for registrations
    /// made before the relay kept chains (migration 0004).
    pub cert_chain: Option<Vec<Vec<u8>>>,
    /// Unix ms.
    pub created_ms: i64,
}

/// A pending detachment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingDetachRow {
    /// Certificate fingerprint.
    pub fingerprint: String,
    /// Its subject.
    pub subject: String,
    /// The device that asked.
    pub requested_by: String,
    /// Unix ms.
    pub requested_ms: i64,
    /// Unix ms.
    pub effective_ms: i64,
}

/// A certificate to attach to a login.
#[derive(Debug, Clone)]
pub struct NewCert<'a> {
    /// SHA-256 of DER, hex.
    pub fingerprint: &'a str,
    /// Subject, for display.
    pub subject: &'a str,
    /// DER.
    pub der: &'a [u8],
    /// The certificates the phone sent between the leaf and a trust anchor, DER.
    pub chain: &'a [Vec<u8>],
}

/// A new device.
#[derive(Debug, Clone)]
pub struct NewDevice<'a> {
    /// Device id (hex).
    pub device_id: &'a str,
    /// Raw Ed25519 key.
    pub key: &'a [u8],
    /// Name.
    pub name: &'a str,
}

/// Result of [`Store::create_login`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Created {
    /// This call created the login.
    Yes,
    /// The login already existed; nothing was written.
    LoginExists,
}

/// The relay's store.
#[derive(Debug, Clone)]
pub struct Store {
    pool: AnyPool,
    backend: Backend,
    /// Nonces consumed on PostgreSQL, for the sweep of expired `used_nonces` rows.
    nonces_taken: std::sync::Arc<std::sync::atomic::AtomicU64>,
    /// Nonces that prove themselves instead of rows (see [`crate::nonces`]): on SQLite under a key of
    /// this process, on PostgreSQL under the key every node reads from `relay_secrets`.
    nonces: std::sync::Arc<crate::nonces::LocalNonces>,
    /// SQLite: the group commit's queue.
    group: Option<tokio::sync::mpsc::Sender<Write>>,
    /// The audit writer's queue (tunnel joins' rows).
    audit_log: tokio::sync::mpsc::Sender<AuditMsg>,
    /// How long the audit writer gathers rows ([`Store::set_audit_linger`]), and its wake-up for a flush.
    audit_linger: std::sync::Arc<Linger>,
    tokens_taken: std::sync::Arc<std::sync::atomic::AtomicU64>,
    /// SQLite in a file: the device read of every tunnel join on the calling thread.
    reader: Option<std::sync::Arc<DeviceReader>>,
}

/// How long a request waits for a database connection before it answers 503 `unavailable`: while the
/// database is away, clients learn it within this time (their own timeouts are longer), not after it.
pub const ACQUIRE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(4);

/// How long the health check waits for the database.
pub const PING_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(2);

fn db(e: sqlx::Error) -> ServiceError {
    match &e {
        sqlx::Error::PoolTimedOut
        | sqlx::Error::Io(_)
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed
        | sqlx::Error::Protocol(_) => {
            ServiceError::new(ErrorCode::Unavailable, "the relay's database is unavailable; try again")
        }
        // PostgreSQL shutting down or restarting under a connection (class 57: admin_shutdown,
        // crash_shutdown, cannot_connect_now) or the connection failing (class 08).
        sqlx::Error::Database(d) if d.code().is_some_and(|c| c.starts_with("57P") || c.starts_with("08")) => {
            tracing::warn!(error = %e, "the relay's database went away under a request");
            ServiceError::new(ErrorCode::Unavailable, "the relay's database is unavailable; try again")
        }
        sqlx::Error::Database(d) if storage_full(d.code().as_deref()) => {
            // Nothing was written (the statement failed whole); the operator must free space.
            tracing::error!(error = %e, "the relay's storage is full: writes fail until space is freed");
            ServiceError::new(
                ErrorCode::Unavailable,
                "the relay's storage is full; nothing was changed, try again later",
            )
        }
        _ => ServiceError::internal(format!("database: {e}")),
    }
}

/// Whether a database error code says the disk is full: SQLite's SQLITE_FULL (13) or an I/O error
/// (SQLITE_IOERR, 10, with its extended codes), PostgreSQL's disk_full (53100).
fn storage_full(code: Option<&str>) -> bool {
    match code {
        Some("53100") => true,
        Some(c) => c.parse::<i64>().is_ok_and(|n| matches!(n & 0xff, 10 | 13)),
        None => false,
    }
}

fn is_unique_violation(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(d) if d.is_unique_violation())
}

/// The key of a cluster's nonces: made by the first node that starts, read by every node after.
async fn shared_nonce_key(pool: &AnyPool) -> Result<kalit_core::SecretBytes, ServiceError> {
    let fresh = kalit_core::SecretBytes::new(kalit_core::seal::random::<32>()?.to_vec());
    sqlx::query("INSERT INTO relay_secrets (name, secret) VALUES ('nonce_key', $1) ON CONFLICT (name) DO NOTHING")
        .bind(fresh.expose_secret().to_vec())
        .execute(pool)
        .await
        .map_err(db)?;
    let row =
        sqlx::query("SELECT secret FROM relay_secrets WHERE name = 'nonce_key'").fetch_one(pool).await.map_err(db)?;
    let key = kalit_core::SecretBytes::new(row.try_get::<Vec<u8>, _>("secret").map_err(db)?);
    if key.len() != 32 {
        return Err(ServiceError::new(ErrorCode::Corrupt, "the relay's nonce key in relay_secrets is not 32 bytes"));
    }
    Ok(key)
}

fn migrator(backend: Backend) -> Migrator {
    let files: &[(&'static str, &'static str)] = match backend {
        Backend::Sqlite => &[
            (include_str!("../migrations/sqlite/0001_init.sql"), "init"),
            (include_str!("../migrations/sqlite/0002_detachments.sql"), "detachments"),
            (include_str!("../migrations/sqlite/0003_rate_buckets.sql"), "rate buckets"),
            (include_str!("../migrations/sqlite/0004_cert_chain.sql"), "certificate chains"),
        ],
        Backend::Postgres => &[
            (include_str!("../migrations/postgres/0001_init.sql"), "init"),
            (include_str!("../migrations/postgres/0002_detachments.sql"), "detachments"),
            (include_str!("../migrations/postgres/0003_rate_buckets.sql"), "rate buckets"),
            (include_str!("../migrations/postgres/0004_cert_chain.sql"), "certificate chains"),
            (include_str!("../migrations/postgres/0005_shared_nonces.sql"), "shared nonces"),
        ],
    };
    kalit_service::migrations::migrator(files)
}

/// The columns [`device_row`] reads, with `extra` columns, and the join they come from (a literal, for
/// `concat!` with the query's condition).
macro_rules! device_select {
    ($extra:literal) => {
        concat!(
            "SELECT d.device_id, d.login, d.device_key, d.name, d.cert_fingerprint, c.subject, d.created_ms, \
             c.cert_der, c.chain",
            $extra,
            " FROM devices d JOIN certificates c ON c.login = d.login AND c.fingerprint = d.cert_fingerprint"
        )
    };
}

/// A device of a login (`$1`, `$2`), with the number of the login's detachments due at `$3`.
const CURRENT_DEVICE: &str = concat!(
    device_select!(", (SELECT COUNT(*) FROM detachments t WHERE t.login = d.login AND t.effective_ms <= $3) AS due"),
    " WHERE d.login = $1 AND d.device_id = $2"
);

/// SQLite: the read every tunnel join makes ([`Store::current_device`]) on a connection of its own, run on
/// the calling thread. Through sqlx each query goes to its connection's own thread and the answer comes
/// back: two threads woken per query, which was about a fifth of the relay's CPU per signing session
/// (docs/PERFORMANCE.md, "The join's device read on the calling thread"). In WAL mode a reader does not
/// wait for the writer and sees every committed write. Whenever this reader cannot answer at once (the
/// connection is in use by another thread, SQLite is busy, any error, a detachment is due), the caller
/// takes the sqlx path, which answers or reports the error as before.
struct DeviceReader {
    conn: std::sync::Mutex<rusqlite::Connection>,
    /// Set by [`Store::close`]: from then on every read takes the (closed) pool's path.
    closed: std::sync::atomic::AtomicBool,
}

impl std::fmt::Debug for DeviceReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DeviceReader")
    }
}

impl DeviceReader {
    /// The reader of a SQLite file named by a `sqlite://PATH[?...]` URL, opened after the migrations (the
    /// file and its WAL mode exist); `None` for an in-memory database, a path with escapes, or a file it
    /// cannot open (the sqlx path then serves every read).
    fn open(url: &str) -> Option<DeviceReader> {
        let rest = url.strip_prefix("sqlite://").or_else(|| url.strip_prefix("sqlite:"))?;
        let (path, query) = rest.split_once('?').unwrap_or((rest, ""));
        if path.is_empty() || path.contains(":memory:") || path.contains('%') || query.contains("memory") {
            return None;
        }
        use rusqlite::OpenFlags;
        let flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let conn = match rusqlite::Connection::open_with_flags(path, flags) {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(error = %e, "device reads go through the pool: the SQLite file did not open");
                return None;
            }
        };
        // Reads only; never wait for a lock on the calling thread (busy: the pool's path instead).
        conn.pragma_update(None, "query_only", true).ok()?;
        conn.busy_timeout(std::time::Duration::ZERO).ok()?;
        Some(DeviceReader { conn: std::sync::Mutex::new(conn), closed: Default::default() })
    }

    /// [`Store::current_device`] when it can answer at once with no detachment due; `None` otherwise.
    fn current_device(&self, login: &str, device_id: &str, now_ms: i64) -> Option<Option<DeviceRow>> {
        if self.closed.load(std::sync::atomic::Ordering::Relaxed) {
            return None;
        }
        let conn = self.conn.try_lock().ok()?;
        let mut st = conn.prepare_cached(CURRENT_DEVICE).ok()?;
        let params = rusqlite::named_params! { "$1": login, "$2": device_id, "$3": now_ms };
        let mut rows = st.query(params).ok()?;
        let Some(r) = rows.next().ok()? else { return Some(None) };
        if r.get::<_, i64>("due").ok()? > 0 {
            return None;
        }
        let chain: Option<String> = r.get("chain").ok()?;
        Some(Some(DeviceRow {
            device_id: r.get("device_id").ok()?,
            login: r.get("login").ok()?,
            device_key: r.get("device_key").ok()?,
            name: r.get("name").ok()?,
            cert_fingerprint: r.get("cert_fingerprint").ok()?,
            cert_subject: r.get("subject").ok()?,
            created_ms: r.get("created_ms").ok()?,
            cert_der: r.get("cert_der").ok()?,
            cert_chain: chain.as_deref().map(decode_chain).transpose().ok()?,
        }))
    }
}

/// The page cache of the SQLite writer (the pool's one connection), in KiB as SQLite's negative
/// `cache_size` takes it: 256 KiB where SQLite's default is 2,000. Its writes are mostly audit rows
/// appended at the end of one table, whose pages it never reads again; the default filled with them over
/// the first minutes of load (1.8 MiB of the relay's memory, measured in a soak). The B-tree's upper
/// pages, which every insert and registration walks, fit in this; the rest comes from the system's file
/// cache. The device reader keeps SQLite's default: its pages are the devices every join looks up.
const WRITER_CACHE: &str = "PRAGMA cache_size=-256";

impl Store {
    /// Opens (and migrates) the database at `url`: `sqlite://PATH` or `postgres://...`.
    pub async fn open(url: &str) -> Result<Store, ServiceError> {
        sqlx::any::install_default_drivers();
        let backend = if url.starts_with("sqlite:") {
            Backend::Sqlite
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Backend::Postgres
        } else {
            return Err(ServiceError::invalid(
                "the database URL must start with sqlite:// or postgres:// (for example postgres://user@host:5432/db)",
            ));
        };
        let unavailable = |e: sqlx::Error| {
            ServiceError::new(ErrorCode::Unavailable, format!("cannot open the {} database: {e}", backend.name()))
        };
        // SQLite has one writer at a time: one connection queues writers in the pool instead of in SQLite's
        // busy handler, whose sleeps made the p99 latency ten times worse under concurrent registrations.
        let max = if backend == Backend::Sqlite { 1 } else { 16 };
        let pool = AnyPoolOptions::new()
            .max_connections(max)
            .acquire_timeout(ACQUIRE_TIMEOUT)
            .after_connect(move |conn, _| {
                Box::pin(async move {
                    if backend == Backend::Sqlite {
                        sqlx::query(WRITER_CACHE).execute(&mut *conn).await?;
                    }
                    Ok(())
                })
            })
            .connect(url)
            .await
            .map_err(unavailable)?;
        if backend == Backend::Sqlite {
            // WAL survives in the file: concurrent readers while one writer commits.
            sqlx::query("PRAGMA journal_mode=WAL").execute(&pool).await.map_err(unavailable)?;
        }
        migrator(backend)
            .run(&pool)
            .await
            .map_err(|e| ServiceError::new(ErrorCode::Corrupt, format!("database migration failed: {e}")))?;
        let (nonces, group) = match backend {
            Backend::Sqlite => (crate::nonces::LocalNonces::new()?, Some(GroupCommit::start(pool.clone()))),
            Backend::Postgres => {
                (crate::nonces::LocalNonces::with_secret(shared_nonce_key(&pool).await?.expose_secret()), None)
            }
        };
        let audit_linger = std::sync::Arc::new(Linger::default());
        let audit_log = AuditLog::start(pool.clone(), group.clone(), audit_linger.clone());
        let reader = match backend {
            Backend::Sqlite => DeviceReader::open(url).map(std::sync::Arc::new),
            Backend::Postgres => None,
        };
        Ok(Store {
            pool,
            backend,
            nonces_taken: Default::default(),
            nonces: std::sync::Arc::new(nonces),
            group,
            audit_log,
            audit_linger,
            tokens_taken: Default::default(),
            reader,
        })
    }

    /// The backend.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// A trivial query, for the health endpoint.
    /// Within [`PING_TIMEOUT`]: a health check must fail fast while the database is away (a load
    /// balancer then takes the node out) rather than wait for the pool's connection timeout.
    pub async fn ping(&self) -> Result<(), ServiceError> {
        match tokio::time::timeout(PING_TIMEOUT, sqlx::query("SELECT 1").execute(&self.pool)).await {
            Ok(r) => r.map(|_| ()).map_err(db),
            Err(_) => Err(ServiceError::new(
                ErrorCode::Unavailable,
                format!("the relay's database did not answer within {} s", PING_TIMEOUT.as_secs()),
            )),
        }
    }

    /// Takes one token from the shared bucket `key` (PostgreSQL only): the bucket refills at `per_ms`
    /// tokens per millisecond up to `burst`. One statement decides, so concurrent nodes cannot both take
    /// the last token. Returns whether a token was taken and the tokens left. Every 1024th call also drops
    /// buckets untouched for ten minutes (they would be full again).
    pub async fn take_token(
        &self,
        key: &str,
        burst: f64,
        per_ms: f64,
        now_ms: i64,
    ) -> Result<(bool, f64), ServiceError> {
        if self.tokens_taken.fetch_add(1, std::sync::atomic::Ordering::Relaxed).is_multiple_of(1024) {
            sqlx::query("DELETE FROM rate_buckets WHERE at_ms < $1")
                .bind(now_ms - 600_000)
                .execute(&self.pool)
                .await
                .map_err(db)?;
        }
        // SET expressions all see the row as it was, so `allowed` and `tokens` agree.
        let row = sqlx::query(
            "INSERT INTO rate_buckets AS b (key, tokens, at_ms, allowed) VALUES ($1, $2 - 1, $3, TRUE) \
             ON CONFLICT (key) DO UPDATE SET \
               allowed = LEAST($2, b.tokens + GREATEST(0, $3 - b.at_ms) * $4) >= 1, \
               tokens = LEAST($2, b.tokens + GREATEST(0, $3 - b.at_ms) * $4) \
                 - CASE WHEN LEAST($2, b.tokens + GREATEST(0, $3 - b.at_ms) * $4) >= 1 THEN 1 ELSE 0 END, \
               at_ms = GREATEST($3, b.at_ms) \
             RETURNING allowed, tokens",
        )
        .bind(key)
        .bind(burst)
        .bind(now_ms)
        .bind(per_ms)
        .fetch_one(&self.pool)
        .await
        .map_err(db)?;
        Ok((row.try_get::<bool, _>("allowed").map_err(db)?, row.try_get::<f64, _>("tokens").map_err(db)?))
    }

    /// A fresh nonce valid until `expires_ms`, proving itself ([`crate::nonces`]): nothing is written.
    pub fn issue_nonce(&self, expires_ms: i64) -> Result<Vec<u8>, ServiceError> {
        Ok(self.nonces.issue(expires_ms.max(0) as u64 / 1000)?.to_vec())
    }

    /// Consumes a nonce: true for exactly one caller, and only for a nonce this relay (any node of it)
    /// issued, before it expires. On SQLite the process remembers it; on PostgreSQL it becomes a row of
    /// `used_nonces` (a second insert of it is refused), and every 64th call also drops expired rows.
    pub async fn take_nonce(&self, nonce: &[u8], now_ms: i64) -> Result<bool, ServiceError> {
        let now_secs = now_ms.max(0) as u64 / 1000;
        if self.backend == Backend::Sqlite {
            return self.nonces.take(nonce, now_secs);
        }
        let Some(expires_secs) = self.nonces.check(nonce, now_secs) else { return Ok(false) };
        if self.nonces_taken.fetch_add(1, std::sync::atomic::Ordering::Relaxed).is_multiple_of(64) {
            sqlx::query("DELETE FROM used_nonces WHERE expires_ms < $1")
                .bind(now_ms)
                .execute(&self.pool)
                .await
                .map_err(db)?;
        }
        // Kept a minute past its expiry (`check` refuses it from then on), so that a node whose clock is
        // behind the sweeping node's still finds it.
        let keep_until = (expires_secs as i64 + USED_NONCE_GRACE_SECS) * 1000;
        let r =
            sqlx::query("INSERT INTO used_nonces (nonce, expires_ms) VALUES ($1, $2) ON CONFLICT (nonce) DO NOTHING")
                .bind(nonce.to_vec())
                .bind(keep_until)
                .execute(&self.pool)
                .await
                .map_err(db)?;
        Ok(r.rows_affected() == 1)
    }

    /// Creates `login` with its first certificate and device, atomically; [`Created::LoginExists`] when
    /// another registration got there first.
    pub async fn create_login(
        &self,
        login: &str,
        cert: &NewCert<'_>,
        device: &NewDevice<'_>,
        now_ms: i64,
    ) -> Result<Created, ServiceError> {
        let new = NewLogin {
            login: login.into(),
            fingerprint: cert.fingerprint.into(),
            subject: cert.subject.into(),
            der: cert.der.to_vec(),
            chain: cert.chain.to_vec(),
            device_id: device.device_id.into(),
            key: device.key.to_vec(),
            name: device.name.into(),
            now_ms,
        };
        match &self.group {
            Some(g) => GroupCommit::submit(g, |reply| Write::Login(new, reply)).await,
            None => {
                let mut tx = self.pool.begin().await.map_err(db)?;
                let created = new.write(&mut tx).await?;
                tx.commit().await.map_err(db)?;
                Ok(created)
            }
        }
    }

    /// True when the certificate is attached to the login.
    pub async fn has_cert(&self, login: &str, fingerprint: &str) -> Result<bool, ServiceError> {
        let row = sqlx::query("SELECT 1 FROM certificates WHERE login = $1 AND fingerprint = $2")
            .bind(login)
            .bind(fingerprint)
            .fetch_optional(&self.pool)
            .await
            .map_err(db)?;
        Ok(row.is_some())
    }

    /// True when the login has any certificate.
    pub async fn has_any_cert(&self, login: &str) -> Result<bool, ServiceError> {
        let row = sqlx::query("SELECT 1 FROM certificates WHERE login = $1 LIMIT 1")
            .bind(login)
            .fetch_optional(&self.pool)
            .await
            .map_err(db)?;
        Ok(row.is_some())
    }

    /// Number of devices of a login.
    pub async fn device_count(&self, login: &str) -> Result<i64, ServiceError> {
        let row = sqlx::query("SELECT COUNT(*) AS n FROM devices WHERE login = $1")
            .bind(login)
            .fetch_one(&self.pool)
            .await
            .map_err(db)?;
        row.try_get::<i64, _>("n").map_err(db)
    }

    /// Attaches a certificate (if new) and a device to an existing login.
    pub async fn add_device(
        &self,
        login: &str,
        cert: &NewCert<'_>,
        device: &NewDevice<'_>,
        now_ms: i64,
    ) -> Result<(), ServiceError> {
        let mut tx = self.pool.begin().await.map_err(db)?;
        insert_cert(&mut tx, login, cert, now_ms, true).await?;
        insert_device(&mut tx, login, device, cert.fingerprint, now_ms).await?;
        audit(&mut tx, now_ms, "device_added", login, device.device_id).await?;
        tx.commit().await.map_err(db)?;
        Ok(())
    }

    /// A device of a login.
    pub async fn device(&self, login: &str, device_id: &str) -> Result<Option<DeviceRow>, ServiceError> {
        let row = sqlx::query(concat!(device_select!(""), " WHERE d.login = $1 AND d.device_id = $2"))
            .bind(login)
            .bind(device_id)
            .fetch_optional(&self.pool)
            .await
            .map_err(db)?;
        row.map(|r| device_row(&r)).transpose()
    }

    /// A device of a login as it is once the login's due detachments are carried out: one query when
    /// none is due (every device request and tunnel join passes here), a transaction and a second read
    /// when one is.
    pub async fn current_device(
        &self,
        login: &str,
        device_id: &str,
        now_ms: i64,
    ) -> Result<Option<DeviceRow>, ServiceError> {
        if let Some(found) = self.reader.as_ref().and_then(|r| r.current_device(login, device_id, now_ms)) {
            return Ok(found);
        }
        let row = sqlx::query(CURRENT_DEVICE)
            .bind(login)
            .bind(device_id)
            .bind(now_ms)
            .fetch_optional(&self.pool)
            .await
            .map_err(db)?;
        let Some(r) = row else { return Ok(None) };
        if r.try_get::<i64, _>("due").map_err(db)? > 0 {
            self.apply_due_detachments(login, now_ms).await?;
            return self.device(login, device_id).await;
        }
        device_row(&r).map(Some)
    }

    /// The devices of a login, oldest first.
    pub async fn devices(&self, login: &str) -> Result<Vec<DeviceRow>, ServiceError> {
        let rows = sqlx::query(concat!(device_select!(""), " WHERE d.login = $1 ORDER BY d.created_ms, d.device_id"))
            .bind(login)
            .fetch_all(&self.pool)
            .await
            .map_err(db)?;
        rows.iter().map(device_row).collect()
    }

    /// Removes a device of a login; false when there is no such device.
    pub async fn remove_device(
        &self,
        login: &str,
        device_id: &str,
        by: &str,
        now_ms: i64,
    ) -> Result<bool, ServiceError> {
        let mut tx = self.pool.begin().await.map_err(db)?;
        let r = sqlx::query("DELETE FROM devices WHERE login = $1 AND device_id = $2")
            .bind(login)
            .bind(device_id)
            .execute(&mut *tx)
            .await
            .map_err(db)?;
        if r.rows_affected() == 1 {
            audit(&mut tx, now_ms, "device_removed", login, &format!("{device_id} by {by}")).await?;
        }
        tx.commit().await.map_err(db)?;
        Ok(r.rows_affected() == 1)
    }

    /// The subject of a certificate attached to a login.
    pub async fn cert_subject(&self, login: &str, fingerprint: &str) -> Result<Option<String>, ServiceError> {
        let row = sqlx::query("SELECT subject FROM certificates WHERE login = $1 AND fingerprint = $2")
            .bind(login)
            .bind(fingerprint)
            .fetch_optional(&self.pool)
            .await
            .map_err(db)?;
        row.map(|r| r.try_get::<String, _>("subject").map_err(db)).transpose()
    }

    /// Records a request to detach a certificate at `effective_ms`; a request already pending keeps its
    /// (earlier) time. Returns the time it takes effect.
    pub async fn request_detach(
        &self,
        login: &str,
        fingerprint: &str,
        by: &str,
        now_ms: i64,
        effective_ms: i64,
    ) -> Result<i64, ServiceError> {
        let mut tx = self.pool.begin().await.map_err(db)?;
        sqlx::query(
            "INSERT INTO detachments (login, fingerprint, requested_by, requested_ms, effective_ms) \
             VALUES ($1, $2, $3, $4, $5) ON CONFLICT (login, fingerprint) DO NOTHING",
        )
        .bind(login)
        .bind(fingerprint)
        .bind(by)
        .bind(now_ms)
        .bind(effective_ms)
        .execute(&mut *tx)
        .await
        .map_err(db)?;
        let row = sqlx::query("SELECT effective_ms FROM detachments WHERE login = $1 AND fingerprint = $2")
            .bind(login)
            .bind(fingerprint)
            .fetch_one(&mut *tx)
            .await
            .map_err(db)?;
        let at: i64 = row.try_get("effective_ms").map_err(db)?;
        audit(&mut tx, now_ms, "detach_requested", login, &format!("{fingerprint} by {by}")).await?;
        tx.commit().await.map_err(db)?;
        Ok(at)
    }

    /// Cancels a pending detachment; false when none was pending.
    pub async fn cancel_detach(
        &self,
        login: &str,
        fingerprint: &str,
        by: &str,
        now_ms: i64,
    ) -> Result<bool, ServiceError> {
        let mut tx = self.pool.begin().await.map_err(db)?;
        let r = sqlx::query("DELETE FROM detachments WHERE login = $1 AND fingerprint = $2")
            .bind(login)
            .bind(fingerprint)
            .execute(&mut *tx)
            .await
            .map_err(db)?;
        if r.rows_affected() == 1 {
            audit(&mut tx, now_ms, "detach_cancelled", login, &format!("{fingerprint} by {by}")).await?;
        }
        tx.commit().await.map_err(db)?;
        Ok(r.rows_affected() == 1)
    }

    /// Pending detachments of a login, soonest first.
    pub async fn pending_detachments(&self, login: &str) -> Result<Vec<PendingDetachRow>, ServiceError> {
        let rows = sqlx::query(
            "SELECT t.fingerprint, c.subject, t.requested_by, t.requested_ms, t.effective_ms \
             FROM detachments t JOIN certificates c ON c.login = t.login AND c.fingerprint = t.fingerprint \
             WHERE t.login = $1 ORDER BY t.effective_ms, t.fingerprint",
        )
        .bind(login)
        .fetch_all(&self.pool)
        .await
        .map_err(db)?;
        rows.iter()
            .map(|r| {
                Ok(PendingDetachRow {
                    fingerprint: r.try_get("fingerprint").map_err(db)?,
                    subject: r.try_get("subject").map_err(db)?,
                    requested_by: r.try_get("requested_by").map_err(db)?,
                    requested_ms: r.try_get("requested_ms").map_err(db)?,
                    effective_ms: r.try_get("effective_ms").map_err(db)?,
                })
            })
            .collect()
    }

    /// Carries out the detachments of a login whose time has come, in one transaction: the certificate,
    /// its devices and the request go; a login left with no certificate goes too (it can be registered
    /// afresh). Returns how many certificates were detached.
    pub async fn apply_due_detachments(&self, login: &str, now_ms: i64) -> Result<usize, ServiceError> {
        // Every device request passes here: one read when nothing is due, a transaction only when it is.
        let any = sqlx::query("SELECT 1 FROM detachments WHERE login = $1 AND effective_ms <= $2 LIMIT 1")
            .bind(login)
            .bind(now_ms)
            .fetch_optional(&self.pool)
            .await
            .map_err(db)?;
        if any.is_none() {
            return Ok(0);
        }
        let mut tx = self.pool.begin().await.map_err(db)?;
        let due = sqlx::query("SELECT fingerprint FROM detachments WHERE login = $1 AND effective_ms <= $2")
            .bind(login)
            .bind(now_ms)
            .fetch_all(&mut *tx)
            .await
            .map_err(db)?;
        let due: Vec<String> = due.iter().map(|r| r.try_get("fingerprint").map_err(db)).collect::<Result<_, _>>()?;
        for fp in &due {
            for sql in [
                "DELETE FROM devices WHERE login = $1 AND cert_fingerprint = $2",
                "DELETE FROM detachments WHERE login = $1 AND fingerprint = $2",
                "DELETE FROM certificates WHERE login = $1 AND fingerprint = $2",
            ] {
                sqlx::query(sql).bind(login).bind(fp).execute(&mut *tx).await.map_err(db)?;
            }
            audit(&mut tx, now_ms, "cert_detached", login, fp).await?;
        }
        if !due.is_empty() {
            let left = sqlx::query("SELECT COUNT(*) AS n FROM certificates WHERE login = $1")
                .bind(login)
                .fetch_one(&mut *tx)
                .await
                .map_err(db)?;
            if left.try_get::<i64, _>("n").map_err(db)? == 0 {
                sqlx::query("DELETE FROM logins WHERE login = $1").bind(login).execute(&mut *tx).await.map_err(db)?;
                audit(&mut tx, now_ms, "login_emptied", login, "").await?;
            }
        }
        tx.commit().await.map_err(db)?;
        Ok(due.len())
    }

    /// Number of logins (for tests and the benchmark).
    pub async fn login_count(&self) -> Result<i64, ServiceError> {
        let row = sqlx::query("SELECT COUNT(*) AS n FROM logins").fetch_one(&self.pool).await.map_err(db)?;
        row.try_get::<i64, _>("n").map_err(db)
    }

    /// Deletes the audit rows older than `before_ms`, oldest first, `batch` rows per transaction, until none
    /// is left; returns how many went, or `None` when another relay node on this PostgreSQL database is
    /// deleting them now (a session advisory lock, [`AUDIT_PRUNE_LOCK`], lets one node at a time do it;
    /// a node that dies releases it with its connection). Ids grow with time, so each batch's scan in id
    /// order stops at the first young rows.
    pub async fn prune_audit(&self, before_ms: i64, batch: i64) -> Result<Option<u64>, ServiceError> {
        const SQL: &str = "DELETE FROM audit WHERE id IN (SELECT id FROM audit WHERE at_ms < $1 ORDER BY id LIMIT $2)";
        if self.backend == Backend::Sqlite {
            // One process, and one connection that the group commit needs between batches.
            let mut total = 0;
            loop {
                let r = sqlx::query(SQL).bind(before_ms).bind(batch).execute(&self.pool).await.map_err(db)?;
                total += r.rows_affected();
                if r.rows_affected() < batch as u64 {
                    return Ok(Some(total));
                }
                tokio::task::yield_now().await;
            }
        }
        let mut conn = self.pool.acquire().await.map_err(db)?;
        let got = sqlx::query("SELECT pg_try_advisory_lock($1) AS got")
            .bind(AUDIT_PRUNE_LOCK)
            .fetch_one(&mut *conn)
            .await
            .map_err(db)?
            .try_get::<bool, _>("got")
            .map_err(db)?;
        if !got {
            return Ok(None);
        }
        let mut total = 0;
        let deleted = loop {
            match sqlx::query(SQL).bind(before_ms).bind(batch).execute(&mut *conn).await {
                Ok(r) if r.rows_affected() < batch as u64 => break Ok(total + r.rows_affected()),
                Ok(r) => total += r.rows_affected(),
                Err(e) => break Err(db(e)),
            }
        };
        let unlocked = sqlx::query("SELECT pg_advisory_unlock($1)").bind(AUDIT_PRUNE_LOCK).execute(&mut *conn).await;
        if unlocked.is_err() {
            // Not back into the pool holding the lock: closed, the session's lock goes with it.
            let _ = conn.close().await;
        }
        deleted.map(Some)
    }

    /// Writes the audit rows still queued, then closes the pool (waits for connections to finish).
    pub async fn close(&self) {
        self.flush_audit().await;
        if let Some(r) = &self.reader {
            r.closed.store(true, std::sync::atomic::Ordering::Relaxed);
        }
        self.pool.close().await;
    }

    /// How long the audit writer gathers tunnel-join rows before it commits them together (at most
    /// [`AUDIT_LINGER_MAX`]): fewer commits for a longer wait, and a relay killed outright loses the rows
    /// of its last wait. Takes effect from the next group.
    pub fn set_audit_linger(&self, linger: std::time::Duration) -> Result<(), ServiceError> {
        if linger > AUDIT_LINGER_MAX {
            return Err(ServiceError::invalid(format!(
                "audit_linger_ms is at most {} (a relay killed outright loses the tunnel-join audit rows of its last linger)",
                AUDIT_LINGER_MAX.as_millis()
            )));
        }
        self.audit_linger.ms.store(linger.as_millis() as u64, std::sync::atomic::Ordering::Relaxed);
        Ok(())
    }

    /// Waits until every audit row queued before this call is written (or its write failed).
    pub async fn flush_audit(&self) {
        let (done, written) = tokio::sync::oneshot::channel();
        if self.audit_log.send(AuditMsg::Flush(done)).await.is_ok() {
            // A writer lingering over rows commits them now, not at its linger's end.
            self.audit_linger.flush.notify_one();
            let _ = written.await;
        }
    }
}

fn device_row(r: &AnyRow) -> Result<DeviceRow, ServiceError> {
    Ok(DeviceRow {
        device_id: r.try_get("device_id").map_err(db)?,
        login: r.try_get("login").map_err(db)?,
        device_key: r.try_get("device_key").map_err(db)?,
        name: r.try_get("name").map_err(db)?,
        cert_fingerprint: r.try_get("cert_fingerprint").map_err(db)?,
        cert_subject: r.try_get("subject").map_err(db)?,
        created_ms: r.try_get("created_ms").map_err(db)?,
        cert_der: r.try_get("cert_der").map_err(db)?,
        cert_chain: r.try_get::<Option<String>, _>("chain").map_err(db)?.as_deref().map(decode_chain).transpose()?,
    })
}

/// The `chain` column: base64 DER certificates separated by commas.
fn encode_chain(chain: &[Vec<u8>]) -> String {
    use base64::Engine;
    chain.iter().map(|c| base64::engine::general_purpose::STANDARD.encode(c)).collect::<Vec<_>>().join(",")
}

fn decode_chain(text: &str) -> Result<Vec<Vec<u8>>, ServiceError> {
    use base64::Engine;
    if text.is_empty() {
        return Ok(vec![]);
    }
    text.split(',')
        .map(|c| base64::engine::general_purpose::STANDARD.decode(c))
        .collect::<Result<_, _>>()
        .map_err(|_| ServiceError::new(ErrorCode::Corrupt, "a stored certificate chain is not base64"))
}

/// Attaches a certificate to a login; with `if_new`, an already attached one is left as it is.
async fn insert_cert(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    login: &str,
    cert: &NewCert<'_>,
    now_ms: i64,
    if_new: bool,
) -> Result<(), ServiceError> {
    const SQL: &str = "INSERT INTO certificates (login, fingerprint, subject, cert_der, created_ms, chain) \
         VALUES ($1, $2, $3, $4, $5, $6)";
    const SQL_IF_NEW: &str = "INSERT INTO certificates (login, fingerprint, subject, cert_der, created_ms, chain) \
         VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (login, fingerprint) DO NOTHING";
    sqlx::query(if if_new { SQL_IF_NEW } else { SQL })
        .bind(login)
        .bind(cert.fingerprint)
        .bind(cert.subject)
        .bind(cert.der.to_vec())
        .bind(now_ms)
        .bind(encode_chain(cert.chain))
        .execute(&mut **tx)
        .await
        .map_err(db)?;
    Ok(())
}

async fn insert_device(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    login: &str,
    d: &NewDevice<'_>,
    cert_fingerprint: &str,
    now_ms: i64,
) -> Result<(), ServiceError> {
    let r = sqlx::query(
        "INSERT INTO devices (device_id, login, device_key, name, cert_fingerprint, created_ms) VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(d.device_id)
    .bind(login)
    .bind(d.key.to_vec())
    .bind(d.name)
    .bind(cert_fingerprint)
    .bind(now_ms)
    .execute(&mut **tx)
    .await;
    match r {
        Ok(_) => Ok(()),
        Err(e) if is_unique_violation(&e) => {
            Err(ServiceError::new(ErrorCode::AlreadyExists, "this device key is already registered"))
        }
        Err(e) => Err(db(e)),
    }
}

impl Store {
    /// Queues one audit row outside any other transaction (tunnel joins); the audit writer commits it
    /// within the linger ([`Store::set_audit_linger`]), together with the others queued meanwhile. Waits
    /// only while the queue is full. The rows of a registration, a removal or a detachment are not queued:
    /// they are written in the same transaction as the change they record.
    pub async fn audit(&self, now_ms: i64, event: &str, login: &str, detail: &str) -> Result<(), ServiceError> {
        let row = AuditRow { now_ms, event: event.into(), login: login.into(), detail: detail.into() };
        self.audit_log
            .send(AuditMsg::Row(row))
            .await
            .map_err(|_| ServiceError::new(ErrorCode::Unavailable, "the relay's audit writer stopped; try again"))
    }
}

/// Seconds a used nonce's row outlives the nonce on PostgreSQL: the clocks of a cluster's nodes may differ
/// by less than this without a swept nonce being accepted again.
pub const USED_NONCE_GRACE_SECS: i64 = 60;

/// The PostgreSQL advisory lock key held by the relay node deleting old audit rows ("kalitaud").
pub const AUDIT_PRUNE_LOCK: i64 = 0x6b61_6c69_7461_7564;

/// How long the audit writer gathers rows before it commits them, unless set otherwise
/// ([`Store::set_audit_linger`], the relay's `audit_linger_ms`).
pub const AUDIT_LINGER: std::time::Duration = std::time::Duration::from_millis(100);
/// The longest linger allowed: a relay killed outright loses the tunnel-join rows of its last linger.
pub const AUDIT_LINGER_MAX: std::time::Duration = std::time::Duration::from_secs(10);

/// How long the audit writer lingers, and what ends a linger early: a flush ([`Store::flush_audit`],
/// [`Store::close`]), so that a relay stopping does not wait out a long linger.
#[derive(Debug)]
struct Linger {
    ms: std::sync::atomic::AtomicU64,
    flush: tokio::sync::Notify,
}

impl Default for Linger {
    fn default() -> Self {
        Linger { ms: (AUDIT_LINGER.as_millis() as u64).into(), flush: tokio::sync::Notify::new() }
    }
}

/// What the audit writer's queue carries.
enum AuditMsg {
    Row(AuditRow),
    /// Answered once every row queued before it is written.
    Flush(tokio::sync::oneshot::Sender<()>),
}

impl AuditMsg {
    fn sort_into(self, rows: &mut Vec<AuditRow>, flushes: &mut Vec<tokio::sync::oneshot::Sender<()>>) {
        match self {
            AuditMsg::Row(r) => rows.push(r),
            AuditMsg::Flush(done) => flushes.push(done),
        }
    }
}

/// The audit rows of tunnel joins, written by one task in groups: a join queues its row and goes on, and
/// the task commits what arrived within the linger of the first row (at most [`GROUP_MAX`] rows) in
/// one transaction (on SQLite through the group commit). A commit per join (a flush to the disk on SQLite,
/// a WAL flush on PostgreSQL) was about a fifth of the relay's CPU per signing session
/// (docs/PERFORMANCE.md). The price: a relay killed outright loses the rows not yet written
/// (those of its last linger while the database keeps up; the queue holds at most
/// `4 * GROUP_MAX`, and joins wait while it is full); a relay stopped normally writes them first
/// ([`Store::close`]).
struct AuditLog;

impl AuditLog {
    fn start(
        pool: AnyPool,
        group: Option<tokio::sync::mpsc::Sender<Write>>,
        linger: std::sync::Arc<Linger>,
    ) -> tokio::sync::mpsc::Sender<AuditMsg> {
        let (tx, mut rx) = tokio::sync::mpsc::channel::<AuditMsg>(4 * GROUP_MAX);
        tokio::spawn(async move {
            // Set when the last group was full: the rows behind it are written at once, not after a linger.
            let mut backlog = false;
            while let Some(first) = rx.recv().await {
                let (mut rows, mut flushes) = (Vec::new(), Vec::new());
                first.sort_into(&mut rows, &mut flushes);
                // Lingers asleep, not waiting on the queue: the rows queued meanwhile wake no task (a wake
                // per join, often of the other worker thread, was part of the relay's cost per session).
                // A flush queued meanwhile ends the linger; one that came first skips it.
                if flushes.is_empty() && !backlog {
                    let ms = linger.ms.load(std::sync::atomic::Ordering::Relaxed);
                    tokio::select! {
                        () = tokio::time::sleep(std::time::Duration::from_millis(ms)) => {}
                        () = linger.flush.notified() => {}
                    }
                }
                while rows.len() < GROUP_MAX {
                    match rx.try_recv() {
                        Ok(m) => m.sort_into(&mut rows, &mut flushes),
                        Err(_) => break,
                    }
                }
                backlog = rows.len() >= GROUP_MAX;
                if !rows.is_empty() {
                    let n = rows.len();
                    let written = match &group {
                        Some(g) => GroupCommit::submit(g, |reply| Write::Audit(rows, reply)).await,
                        None => Self::write(&pool, &rows).await,
                    };
                    if let Err(e) = written {
                        tracing::warn!(error = %e.message, rows = n, "audit rows not written");
                    }
                }
                flushes.into_iter().for_each(|done| {
                    let _ = done.send(());
                });
            }
        });
        tx
    }

    async fn write(pool: &AnyPool, rows: &[AuditRow]) -> Result<(), ServiceError> {
        let mut tx = pool.begin().await.map_err(db)?;
        AuditRow::write_all(rows, &mut tx).await?;
        tx.commit().await.map_err(db)
    }
}

/// A new login with its first certificate and device, owned (it waits in the group commit's queue).
struct NewLogin {
    login: String,
    fingerprint: String,
    subject: String,
    der: Vec<u8>,
    chain: Vec<Vec<u8>>,
    device_id: String,
    key: Vec<u8>,
    name: String,
    now_ms: i64,
}

impl NewLogin {
    /// Writes the login, certificate, device and audit row in `tx`; nothing when the login exists.
    async fn write(&self, tx: &mut sqlx::Transaction<'_, sqlx::Any>) -> Result<Created, ServiceError> {
        // ON CONFLICT DO NOTHING rather than a unique violation: an error would abort the transaction
        // that other registrations share in the group commit.
        let r = sqlx::query("INSERT INTO logins (login, created_ms) VALUES ($1, $2) ON CONFLICT (login) DO NOTHING")
            .bind(&self.login)
            .bind(self.now_ms)
            .execute(&mut **tx)
            .await
            .map_err(db)?;
        if r.rows_affected() == 0 {
            return Ok(Created::LoginExists);
        }
        let cert =
            NewCert { fingerprint: &self.fingerprint, subject: &self.subject, der: &self.der, chain: &self.chain };
        let device = NewDevice { device_id: &self.device_id, key: &self.key, name: &self.name };
        insert_cert(tx, &self.login, &cert, self.now_ms, false).await?;
        insert_device(tx, &self.login, &device, &self.fingerprint, self.now_ms).await?;
        audit(tx, self.now_ms, "login_created", &self.login, &self.device_id).await?;
        Ok(Created::Yes)
    }
}

/// An audit row, owned.
struct AuditRow {
    now_ms: i64,
    event: String,
    login: String,
    detail: String,
}

/// Audit rows per `INSERT`: one statement, one round trip to the database (on SQLite one to sqlx's
/// connection thread and back), for many rows; 4 values a row, far under either backend's limit.
const AUDIT_ROWS_PER_INSERT: usize = 64;

impl AuditRow {
    /// Writes `rows` in `tx`, in their order, [`AUDIT_ROWS_PER_INSERT`] to a statement.
    async fn write_all(rows: &[AuditRow], tx: &mut sqlx::Transaction<'_, sqlx::Any>) -> Result<(), ServiceError> {
        for chunk in rows.chunks(AUDIT_ROWS_PER_INSERT) {
            let values: Vec<String> = (0..chunk.len())
                .map(|i| format!("(${}, ${}, ${}, ${})", 4 * i + 1, 4 * i + 2, 4 * i + 3, 4 * i + 4))
                .collect();
            let sql = format!("INSERT INTO audit (at_ms, event, login, detail) VALUES {}", values.join(", "));
            // Only placeholders are formatted into the statement; every value is bound.
            let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
            for r in chunk {
                q = q.bind(r.now_ms).bind(r.event.as_str()).bind(r.login.as_str()).bind(r.detail.as_str());
            }
            q.execute(&mut **tx).await.map_err(db)?;
        }
        Ok(())
    }
}

type Reply<T> = tokio::sync::oneshot::Sender<Result<T, ServiceError>>;

/// A write waiting for the group commit, with where its answer goes.
enum Write {
    Login(NewLogin, Reply<Created>),
    Audit(Vec<AuditRow>, Reply<()>),
}

impl std::fmt::Debug for Write {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Write::Login(..) => "Write::Login",
            Write::Audit(..) => "Write::Audit",
        })
    }
}

impl Write {
    async fn write(&self, tx: &mut sqlx::Transaction<'_, sqlx::Any>) -> Result<Option<Created>, ServiceError> {
        match self {
            Write::Login(n, _) => n.write(tx).await.map(Some),
            Write::Audit(rows, _) => AuditRow::write_all(rows, tx).await.map(|()| None),
        }
    }

    /// Sends the outcome (the caller may have gone: a registration written for a phone that hung up is
    /// what a lost answer is, and a retry finds it).
    fn answer(self, r: Result<Option<Created>, ServiceError>) {
        match self {
            Write::Login(_, reply) => {
                let _ = reply.send(r.map(|c| c.unwrap_or(Created::LoginExists)));
            }
            Write::Audit(_, reply) => {
                let _ = reply.send(r.map(|_| ()));
            }
        }
    }
}

/// SQLite's group commit: one task takes every write waiting in the queue (up to [`GROUP_MAX`]) into
/// one transaction and answers each after the commit, so one fsync serves them all. If any of them fails,
/// the transaction is rolled back and each is written in a transaction of its own, so only the one at
/// fault gets the error.
struct GroupCommit;

/// Most writes in one transaction.
const GROUP_MAX: usize = 256;

impl GroupCommit {
    fn start(pool: AnyPool) -> tokio::sync::mpsc::Sender<Write> {
        let (tx, mut rx) = tokio::sync::mpsc::channel::<Write>(4 * GROUP_MAX);
        tokio::spawn(async move {
            let mut batch = Vec::with_capacity(GROUP_MAX);
            while rx.recv_many(&mut batch, GROUP_MAX).await > 0 {
                match Self::together(&pool, &batch).await {
                    Ok(results) => batch.drain(..).zip(results).for_each(|(w, r)| w.answer(Ok(r))),
                    Err(_) => {
                        for w in batch.drain(..) {
                            let r = Self::alone(&pool, &w).await;
                            w.answer(r);
                        }
                    }
                }
            }
        });
        tx
    }

    async fn together(pool: &AnyPool, batch: &[Write]) -> Result<Vec<Option<Created>>, ServiceError> {
        let mut tx = pool.begin().await.map_err(db)?;
        let mut out = Vec::with_capacity(batch.len());
        for w in batch {
            out.push(w.write(&mut tx).await?);
        }
        tx.commit().await.map_err(db)?;
        Ok(out)
    }

    async fn alone(pool: &AnyPool, w: &Write) -> Result<Option<Created>, ServiceError> {
        let mut tx = pool.begin().await.map_err(db)?;
        let r = w.write(&mut tx).await?;
        tx.commit().await.map_err(db)?;
        Ok(r)
    }

    /// Queues a write and waits for its answer.
    async fn submit<T>(
        queue: &tokio::sync::mpsc::Sender<Write>,
        make: impl FnOnce(Reply<T>) -> Write,
    ) -> Result<T, ServiceError> {
        let gone = || ServiceError::new(ErrorCode::Unavailable, "the relay's database writer stopped; try again");
        let (reply, answer) = tokio::sync::oneshot::channel();
        queue.send(make(reply)).await.map_err(|_| gone())?;
        answer.await.map_err(|_| gone())?
    }
}

async fn audit(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    now_ms: i64,
    event: &str,
    login: &str,
    detail: &str,
) -> Result<(), ServiceError> {
    sqlx::query("INSERT INTO audit (at_ms, event, login, detail) VALUES ($1, $2, $3, $4)")
        .bind(now_ms)
        .bind(event)
        .bind(login)
        .bind(detail)
        .execute(&mut **tx)
        .await
        .map_err(db)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::{Created, DeviceReader, ErrorCode, NewCert, NewDevice, Store};
    use sqlx::Row;

    /// A store in a SQLite file of `dir` with login `ali` and its device `d1`, registered at 1,000 ms.
    async fn with_device(dir: &tempfile::TempDir) -> Store {
        let url = format!("sqlite://{}?mode=rwc", dir.path().join("relay.db").display());
        let s = Store::open(&url).await.unwrap();
        let chain = [vec![4, 5], vec![6]];
        let cert = NewCert { fingerprint: "ab", subject: "CN=Ali", der: &[1, 2, 3], chain: &chain };
        let dev = NewDevice { device_id: "d1", key: &[7; 32], name: "phone" };
        assert_eq!(s.create_login("ali", &cert, &dev, 1_000).await.unwrap(), Created::Yes);
        s
    }

    #[tokio::test]
    async fn the_join_device_read_on_the_calling_thread_answers_as_the_pool_does() {
        let dir = tempfile::tempdir().unwrap();
        let s = with_device(&dir).await;
        let reader = s.reader.clone().expect("a SQLite file has its reader");
        let pooled = s.device("ali", "d1").await.unwrap();
        assert_eq!(pooled.as_ref().map(|d| d.cert_chain.clone()), Some(Some(vec![vec![4, 5], vec![6]])));
        assert_eq!(reader.current_device("ali", "d1", 2_000), Some(pooled.clone()));
        assert_eq!(s.current_device("ali", "d1", 2_000).await.unwrap(), pooled);
        // No such device, or another login's: answered, none.
        assert_eq!(reader.current_device("ali", "d2", 2_000), Some(None));
        assert_eq!(reader.current_device("vali", "d1", 2_000), Some(None));
        // While another thread holds the connection: not answered here (the pool's path answers).
        let held = reader.conn.lock().unwrap();
        assert_eq!(reader.current_device("ali", "d1", 2_000), None);
        drop(held);
        // A removal committed through the pool is seen at once.
        assert!(s.remove_device("ali", "d1", "d1", 3_000).await.unwrap());
        assert_eq!(reader.current_device("ali", "d1", 3_000), Some(None));
        assert_eq!(s.current_device("ali", "d1", 3_000).await.unwrap(), None);
        // A closed store answers nothing here either: the pool's path says the database is unavailable.
        s.close().await;
        assert_eq!(reader.current_device("ali", "d1", 3_000), None);
        assert_eq!(s.current_device("ali", "d1", 3_000).await.unwrap_err().code, ErrorCode::Unavailable);
    }

    #[tokio::test]
    async fn a_due_detachment_is_left_to_the_pool_which_carries_it_out() {
        let dir = tempfile::tempdir().unwrap();
        let s = with_device(&dir).await;
        let reader = s.reader.clone().unwrap();
        s.request_detach("ali", "ab", "d1", 1_500, 1_800).await.unwrap();
        // Not yet due: answered here.
        assert!(matches!(reader.current_device("ali", "d1", 1_700), Some(Some(_))));
        // Due: not answered here; the store carries it out, and the certificate's device is gone.
        assert_eq!(reader.current_device("ali", "d1", 1_900), None);
        assert_eq!(s.current_device("ali", "d1", 1_900).await.unwrap(), None);
        assert_eq!(reader.current_device("ali", "d1", 1_900), Some(None));
    }

    #[tokio::test]
    async fn queued_audit_rows_are_written_in_their_order_many_to_a_statement() {
        let dir = tempfile::tempdir().unwrap();
        let s = with_device(&dir).await;
        // More rows than one statement takes, and a last statement that is not full.
        let n = 2 * super::AUDIT_ROWS_PER_INSERT + 3;
        for i in 0..n {
            s.audit(5_000 + i as i64, "tunnel_joined", "ali", &format!("d{i}")).await.unwrap();
        }
        s.flush_audit().await;
        let rows = sqlx::query("SELECT at_ms, detail FROM audit WHERE event = 'tunnel_joined' ORDER BY id")
            .fetch_all(&s.pool)
            .await
            .unwrap();
        let got: Vec<(i64, String)> =
            rows.iter().map(|r| (r.try_get("at_ms").unwrap(), r.try_get("detail").unwrap())).collect();
        let want: Vec<(i64, String)> = (0..n).map(|i| (5_000 + i as i64, format!("d{i}"))).collect();
        assert_eq!(got, want);
    }

    /// The writer's small page cache is set on every connection the pool opens, a replaced one too (the
    /// pool closes connections after their lifetime); PostgreSQL's are left as they are.
    #[tokio::test]
    async fn the_sqlite_writer_keeps_a_small_page_cache_on_every_connection() {
        let dir = tempfile::tempdir().unwrap();
        let s = with_device(&dir).await;
        let cache = |s: &Store| {
            let pool = s.pool.clone();
            async move {
                let mut c = pool.acquire().await.unwrap();
                let size: i64 = sqlx::query("PRAGMA cache_size").fetch_one(&mut *c).await.unwrap().try_get(0).unwrap();
                // Closed rather than returned: the next acquire opens a fresh connection.
                c.close().await.unwrap();
                size
            }
        };
        assert_eq!(cache(&s).await, -256);
        assert_eq!(cache(&s).await, -256, "a new connection");
        // A connection without the hook has SQLite's default, so the check above can fail.
        let url = format!("sqlite://{}", dir.path().join("relay.db").display());
        let mut plain = <sqlx::AnyConnection as sqlx::Connection>::connect(&url).await.unwrap();
        let size: i64 = sqlx::query("PRAGMA cache_size").fetch_one(&mut plain).await.unwrap().try_get(0).unwrap();
        assert_eq!(size, -2000);
    }

    #[test]
    fn only_a_plain_sqlite_file_gets_a_reader() {
        let dir = tempfile::tempdir().unwrap();
        for url in [
            "sqlite::memory:",
            "sqlite://:memory:",
            "sqlite://x.db?mode=memory",
            "sqlite://a%20b.db",
            "sqlite://",
            "postgres://127.0.0.1/x",
        ] {
            assert!(DeviceReader::open(url).is_none(), "{url}");
        }
        // A file that is not there is not made here (the pool makes and migrates it first).
        let missing = dir.path().join("none.db");
        assert!(DeviceReader::open(&format!("sqlite://{}", missing.display())).is_none());
        assert!(!missing.exists());
    }
}
