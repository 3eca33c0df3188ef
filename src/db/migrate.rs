//! Migrations and SQL code: what `pgrpc migrate` (and an embedded start) applies.
//!
//! State lives in `migrations/` (refinery, embedded in the binary, never edited
//! once applied). Code lives in `sql/`: every file listed in
//! `sql/load_order.txt`, re-applied in that order in one transaction, so a
//! broken file leaves the previous functions in place. Runs under an advisory
//! lock so two gateways starting together do not migrate twice. This module
//! does not open connections; the caller passes an owner connection.

use tokio_postgres::Client;

mod embedded {
    refinery::embed_migrations!("migrations");
}

include!(concat!(env!("OUT_DIR"), "/sql_files.rs"));

/// Advisory lock key shared by every gateway migrating the same database.
const MIGRATION_LOCK: i64 = 0x0070_6772_7063; // "pgrpc" in ASCII

/// Why migrating failed.
#[derive(Debug, thiserror::Error)]
pub enum MigrateError {
    /// A refinery migration failed.
    #[error("migration failed: {0}")]
    Migration(#[from] refinery::Error),
    /// A file of `sql/` failed; nothing of `sql/` was applied.
    #[error("sql/{file} failed: {message}")]
    SqlFile {
        /// The file.
        file: &'static str,
        /// PostgreSQL's message, detail and position.
        message: String,
    },
    /// The connection failed.
    #[error("database error while migrating: {0}")]
    Db(#[from] tokio_postgres::Error),
}

/// Apply pending migrations, then re-apply `sql/`.
pub async fn migrate(client: &mut Client) -> Result<(), MigrateError> {
    client
        .execute("select pg_advisory_lock($1)", &[&MIGRATION_LOCK])
        .await?;
    let result = async {
        embedded::migrations::runner()
            .set_abort_divergent(true)
            .run_async(client)
            .await?;
        apply_sql(client).await
    }
    .await;
    // The lock is session-level; release it even when migrating failed.
    let _ = client
        .execute("select pg_advisory_unlock($1)", &[&MIGRATION_LOCK])
        .await;
    result
}

/// Re-apply every file of `sql/` in one transaction.
pub async fn apply_sql(client: &mut Client) -> Result<(), MigrateError> {
    let tx = client.transaction().await?;
    for (file, sql) in SQL_FILES {
        tx.batch_execute(sql)
            .await
            .map_err(|e| MigrateError::SqlFile {
                file,
                message: describe(&e),
            })?;
    }
    tx.commit().await?;
    Ok(())
}

/// PostgreSQL's message with detail, hint and position, for an operator.
fn describe(e: &tokio_postgres::Error) -> String {
    let Some(db) = e.as_db_error() else {
        return e.to_string();
    };
    let mut text = format!("{} ({})", db.message(), db.code().code());
    if let Some(detail) = db.detail() {
        text.push_str(&format!("; detail: {detail}"));
    }
    if let Some(hint) = db.hint() {
        text.push_str(&format!("; hint: {hint}"));
    }
    if let Some(tokio_postgres::error::ErrorPosition::Original(pos)) = db.position() {
        text.push_str(&format!("; at character {pos}"));
    }
    text
}
