//! The RA's records in SQLite (`DIR/ra.db`): enrolment codes (only their SHA-256 is stored) and issued
//! certificates. `kalit ra enrol` and `kalit ra revoke` write while `kalit ra serve` runs; SQLite's WAL
//! and busy timeout serialise them.

use std::path::Path;

use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions};
use sqlx::{Row, SqlitePool};

use crate::RaError;

/// A revoked certificate, for the CRL.
#[derive(Debug, Clone)]
pub struct Revoked {
    /// Serial, hex.
    pub serial: String,
    /// Unix ms.
    pub revoked_ms: i64,
    /// RFC 5280 reason name.
    pub reason: Option<String>,
}

/// An issued certificate, for `kalit ra list`.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Issued {
    /// Serial, hex.
    pub serial: String,
    /// Subject.
    pub subject: String,
    /// Unix seconds.
    pub issued_at: i64,
    /// Unix seconds.
    pub not_after: i64,
    /// Unix seconds, when revoked.
    pub revoked_at: Option<i64>,
    /// Revocation reason.
    pub reason: Option<String>,
}

/// The RA database.
#[derive(Debug, Clone)]
pub struct RaStore {
    pub(crate) pool: SqlitePool,
}

impl RaStore {
    /// Opens (creating and migrating) `DIR/ra.db`.
    pub async fn open(dir: &Path) -> Result<RaStore, RaError> {
        // The database holds who was enrolled: owner-only, like the directory (its WAL files inherit the
        // mode of the database file).
        kalit_service::files::private_dir(dir).map_err(RaError::io(format!("cannot create {}", dir.display())))?;
        kalit_service::files::private_file(&dir.join("ra.db"))
            .map_err(RaError::io(format!("cannot create {}", dir.join("ra.db").display())))?;
        let opts = SqliteConnectOptions::new()
            .filename(dir.join("ra.db"))
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .busy_timeout(std::time::Duration::from_secs(10));
        let pool = SqlitePoolOptions::new().max_connections(4).connect_with(opts).await.map_err(RaError::db)?;
        let files = [
            (include_str!("../migrations/0001_init.sql"), "init"),
            (include_str!("../migrations/0002_spki_index.sql"), "spki index"),
        ];
        kalit_service::migrations::migrator(&files)
            .run(&pool)
            .await
            .map_err(|e| RaError::new(kalit_proto::ErrorCode::Corrupt, format!("RA database migration: {e}")))?;
        Ok(RaStore { pool })
    }

    /// Records an enrolment.
    pub async fn add_enrolment(
        &self,
        code_hash: &str,
        subject: &str,
        now_ms: i64,
        expires_ms: i64,
    ) -> Result<(), RaError> {
        sqlx::query("INSERT INTO enrolments (code_hash, subject, created_ms, expires_ms) VALUES ($1, $2, $3, $4)")
            .bind(code_hash)
            .bind(subject)
            .bind(now_ms)
            .bind(expires_ms)
            .execute(&self.pool)
            .await
            .map_err(RaError::db)?;
        Ok(())
    }

    /// Marks a certificate revoked; false when the serial is unknown.
    pub async fn revoke(&self, serial: &str, reason: Option<&str>, now_ms: i64) -> Result<bool, RaError> {
        let r = sqlx::query("UPDATE issued SET revoked_ms = $1, reason = $2 WHERE serial = $3 AND revoked_ms IS NULL")
            .bind(now_ms)
            .bind(reason)
            .bind(serial)
            .execute(&self.pool)
            .await
            .map_err(RaError::db)?;
        Ok(r.rows_affected() == 1)
    }

    /// Revoked certificates that have not expired yet.
    pub async fn revoked(&self, now_ms: i64) -> Result<Vec<Revoked>, RaError> {
        let rows = sqlx::query(
            "SELECT serial, revoked_ms, reason FROM issued WHERE revoked_ms IS NOT NULL AND not_after_ms >= $1 ORDER BY serial",
        )
        .bind(now_ms)
        .fetch_all(&self.pool)
        .await
        .map_err(RaError::db)?;
        rows.iter()
            .map(|r| {
                Ok(Revoked {
                    serial: r.try_get("serial").map_err(RaError::db)?,
                    revoked_ms: r.try_get("revoked_ms").map_err(RaError::db)?,
                    reason: r.try_get("reason").map_err(RaError::db)?,
                })
            })
            .collect()
    }

    /// What the RA knows of a serial (32 hex digits): `None` when it never issued it; else when it was
    /// revoked (Unix ms) and why.
    pub async fn status(&self, serial: &str) -> Result<Option<(Option<i64>, Option<String>)>, RaError> {
        let row = sqlx::query("SELECT revoked_ms, reason FROM issued WHERE serial = $1")
            .bind(serial)
            .fetch_optional(&self.pool)
            .await
            .map_err(RaError::db)?;
        row.map(|r| Ok((r.try_get("revoked_ms").map_err(RaError::db)?, r.try_get("reason").map_err(RaError::db)?)))
            .transpose()
    }

    /// Every issued certificate, oldest first.
    pub async fn issued(&self) -> Result<Vec<Issued>, RaError> {
        let rows = sqlx::query(
            "SELECT serial, subject, issued_ms, not_after_ms, revoked_ms, reason FROM issued ORDER BY issued_ms, serial",
        )
        .fetch_all(&self.pool)
        .await
        .map_err(RaError::db)?;
        rows.iter()
            .map(|r| {
                Ok(Issued {
                    serial: r.try_get("serial").map_err(RaError::db)?,
                    subject: r.try_get("subject").map_err(RaError::db)?,
                    issued_at: r.try_get::<i64, _>("issued_ms").map_err(RaError::db)? / 1000,
                    not_after: r.try_get::<i64, _>("not_after_ms").map_err(RaError::db)? / 1000,
                    revoked_at: r.try_get::<Option<i64>, _>("revoked_ms").map_err(RaError::db)?.map(|m| m / 1000),
                    reason: r.try_get("reason").map_err(RaError::db)?,
                })
            })
            .collect()
    }

    /// Number of issued certificates.
    pub async fn issued_count(&self) -> Result<i64, RaError> {
        let r = sqlx::query("SELECT COUNT(*) AS n FROM issued").fetch_one(&self.pool).await.map_err(RaError::db)?;
        r.try_get("n").map_err(RaError::db)
    }
}
