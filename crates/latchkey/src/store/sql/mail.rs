//! [`MailStore`] on SQL: the durable queue of outgoing mail. A claim is one statement, so two senders (nodes)
//! never both take a mail while its lease runs; a sender that dies mid-send leaves the lease to run out, and the
//! mail goes again (at-least-once: a mail may, rarely, arrive twice; it is never lost).

use super::*;

#[async_trait]
impl MailStore for SqlStore {
    async fn enqueue_mail(&self, m: &QueuedMail) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO mail_queue (id, recipient, kind, message, attempts, next_attempt_at, created_at) \
             VALUES ($1, $2, $3, $4, 0, $5, $5)",
        )
        .bind(&m.id)
        .bind(&m.recipient)
        .bind(&m.kind)
        .bind(m.sealed_message.clone())
        .bind(m.created_at)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn claim_mail(&self, now: Timestamp, lease: i64) -> StoreResult<Option<ClaimedMail>> {
        // The outer conditions are checked again on the row a concurrent claimer may have just updated
        // (PostgreSQL re-evaluates them under READ COMMITTED), so only one of them gets it.
        const DUE: &str = "failed_at IS NULL AND next_attempt_at <= $1 AND (claimed_until IS NULL OR claimed_until <= $1)";
        let sql = format!(
            "UPDATE mail_queue SET claimed_until = $2, attempts = attempts + 1 \
             WHERE id = (SELECT id FROM mail_queue WHERE {DUE} ORDER BY next_attempt_at, created_at LIMIT 1) \
             AND {DUE} RETURNING id, recipient, kind, message, attempts, created_at"
        );
        let row = sqlx::query(&sql)
            .bind(now)
            .bind(now + lease)
            .fetch_optional(&self.pool)
            .await?;
        row.map(|row| {
            Ok(ClaimedMail {
                id: row.try_get("id")?,
                recipient: row.try_get("recipient")?,
                kind: row.try_get("kind")?,
                sealed_message: row
                    .try_get::<Option<Vec<u8>>, _>("message")?
                    .ok_or_else(|| StoreError::Corrupt("a queued mail has no message".into()))?,
                attempts: row.try_get("attempts")?,
                created_at: row.try_get("created_at")?,
            })
        })
        .transpose()
    }

    async fn mail_sent(&self, id: &str) -> StoreResult<()> {
        sqlx::query("DELETE FROM mail_queue WHERE id = $1")
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn mail_failed(
        &self,
        id: &str,
        error: &str,
        retry_at: Option<Timestamp>,
        now: Timestamp,
    ) -> StoreResult<()> {
        let error: String = error.chars().take(500).collect();
        match retry_at {
            Some(at) => sqlx::query(
                "UPDATE mail_queue SET next_attempt_at = $2, claimed_until = NULL, last_error = $3 WHERE id = $1",
            )
            .bind(id)
            .bind(at)
            .bind(error),
            None => sqlx::query(
                "UPDATE mail_queue SET failed_at = $2, claimed_until = NULL, last_error = $3, message = NULL \
                 WHERE id = $1",
            )
            .bind(id)
            .bind(now)
            .bind(error),
        }
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn mail_backlog(&self) -> StoreResult<(i64, i64)> {
        let row = sqlx::query(
            "SELECT (SELECT COUNT(*) FROM mail_queue WHERE failed_at IS NULL) AS queued, \
             (SELECT COUNT(*) FROM mail_queue WHERE failed_at IS NOT NULL) AS failed",
        )
        .fetch_one(&self.reader)
        .await?;
        Ok((row.try_get("queued")?, row.try_get("failed")?))
    }
}
