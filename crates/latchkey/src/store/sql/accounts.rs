//! [`AccountStore`] on SQL: mailed codes, and the account changes they make, each in the transaction that uses
//! the code up.

use super::*;

const CODE_COLUMNS: &str = "id, purpose, user_id, email, tries, created_at, expires_at, used_at";

fn code_from(row: &AnyRow) -> StoreResult<EmailCode> {
    let purpose: String = row.try_get("purpose")?;
    Ok(EmailCode {
        id: row.try_get("id")?,
        purpose: CodePurpose::parse(&purpose)
            .ok_or_else(|| StoreError::Corrupt(format!("unknown code purpose {purpose:?}")))?,
        user_id: row.try_get("user_id")?,
        email: row.try_get("email")?,
        tries: row.try_get("tries")?,
        created_at: row.try_get("created_at")?,
        expires_at: row.try_get("expires_at")?,
        used_at: row.try_get("used_at")?,
    })
}

/// Applies a redeemed code's effect inside `tx`; `false` if the effect could not apply (the account is gone or
/// no longer has that address), `Err(EmailTaken)`-like outcomes are reported by the caller.
async fn apply(
    tx: &mut Tx<'_>,
    code: &EmailCode,
    effect: CodeEffect<'_>,
) -> Result<Applied, StoreError> {
    let Some(user_id) = code.user_id.as_deref() else {
        return Ok(Applied::Gone);
    };
    let done = match (code.purpose, effect) {
        (CodePurpose::Verify, _) => {
            sqlx::query("UPDATE users SET email_verified = 1 WHERE id = $1 AND email = $2")
                .bind(user_id)
                .bind(&code.email)
                .execute(&mut **tx)
                .await?
        }
        (CodePurpose::Reset, CodeEffect::NewPassword(hash)) => {
            // The code came to the account's address: proof of the address too.
            let done = sqlx::query(
                "UPDATE users SET password_hash = $2, \
                 email_verified = CASE WHEN email = $3 THEN 1 ELSE email_verified END WHERE id = $1",
            )
            .bind(user_id)
            .bind(hash)
            .bind(&code.email)
            .execute(&mut **tx)
            .await?;
            sqlx::query("DELETE FROM sessions WHERE user_id = $1")
                .bind(user_id)
                .execute(&mut **tx)
                .await?;
            done
        }
        (CodePurpose::Reset, CodeEffect::Apply) => {
            return Err(StoreError::Corrupt(
                "a password reset needs the new password".into(),
            ))
        }
        (CodePurpose::Change, _) => {
            let taken = sqlx::query("SELECT 1 FROM users WHERE email = $1 AND id <> $2")
                .bind(&code.email)
                .bind(user_id)
                .fetch_optional(&mut **tx)
                .await?;
            if taken.is_some() {
                return Ok(Applied::EmailTaken);
            }
            match sqlx::query("UPDATE users SET email = $2, email_verified = 1 WHERE id = $1")
                .bind(user_id)
                .bind(&code.email)
                .execute(&mut **tx)
                .await
            {
                Ok(done) => done,
                // Another account took the address between the check and the write.
                Err(sqlx::Error::Database(e)) if e.is_unique_violation() => {
                    return Ok(Applied::EmailTaken)
                }
                Err(e) => return Err(e.into()),
            }
        }
    };
    Ok(if done.rows_affected() == 1 {
        Applied::Done
    } else {
        Applied::Gone
    })
}

enum Applied {
    Done,
    Gone,
    EmailTaken,
}

#[async_trait]
impl AccountStore for SqlStore {
    async fn create_email_code(&self, c: &NewEmailCode, now: Timestamp) -> StoreResult<()> {
        let mut tx = self.pool.begin().await?;
        let earlier = match &c.user_id {
            Some(_) => "UPDATE email_codes SET used_at = $3 WHERE purpose = $1 AND user_id = $2 AND used_at IS NULL",
            None => "UPDATE email_codes SET used_at = $3 WHERE purpose = $1 AND user_id IS NULL AND email = $2 \
                     AND used_at IS NULL",
        };
        sqlx::query(earlier)
            .bind(c.purpose.as_str())
            .bind(c.user_id.as_deref().unwrap_or(&c.email))
            .bind(now)
            .execute(&mut *tx)
            .await?;
        sqlx::query(
            "INSERT INTO email_codes (id, purpose, user_id, email, code_hash, link_hash, tries, created_at, \
             expires_at) VALUES ($1, $2, $3, $4, $5, $6, 0, $7, $8)",
        )
        .bind(&c.id)
        .bind(c.purpose.as_str())
        .bind(c.user_id.as_deref())
        .bind(&c.email)
        .bind(c.code_hash.to_vec())
        .bind(c.link_hash.to_vec())
        .bind(c.created_at)
        .bind(c.expires_at)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn delete_user(&self, user_id: &str, now: Timestamp) -> StoreResult<DeleteUser> {
        let mut tx = self.pool.begin().await?;
        // The customer's row is written first: issuances in flight for it finish or wait (see sql.rs), and SQLite
        // takes its write lock up front.
        let locked = sqlx::query(&format!("{LOCK_CUSTOMER} = $1"))
            .bind(user_id)
            .execute(&mut *tx)
            .await?;
        if locked.rows_affected() == 0 {
            return Ok(DeleteUser::Unknown);
        }
        let owned: i64 = sqlx::query("SELECT COUNT(*) AS n FROM clients WHERE owner = $1")
            .bind(user_id)
            .fetch_one(&mut *tx)
            .await?
            .try_get("n")?;
        if owned > 0 {
            return Ok(DeleteUser::OwnsApps(owned));
        }
        revoke(&mut tx, Revoke::User(user_id), now).await?;
        for sql in [
            "DELETE FROM access_tokens WHERE user_id = $1",
            "DELETE FROM refresh_tokens WHERE user_id = $1",
            "DELETE FROM token_families WHERE user_id = $1",
            "DELETE FROM auth_codes WHERE user_id = $1",
            "DELETE FROM consents WHERE user_id = $1",
            "DELETE FROM sessions WHERE user_id = $1",
            "DELETE FROM device_codes WHERE user_id = $1",
            "DELETE FROM email_codes WHERE user_id = $1",
            "DELETE FROM audit_events WHERE user_id = $1",
            "DELETE FROM developers WHERE user_id = $1",
            "DELETE FROM users WHERE id = $1",
        ] {
            sqlx::query(sql).bind(user_id).execute(&mut *tx).await?;
        }
        tx.commit().await?;
        Ok(DeleteUser::Deleted)
    }

    async fn find_email_code(&self, id: &str) -> StoreResult<Option<EmailCode>> {
        let sql = format!("SELECT {CODE_COLUMNS} FROM email_codes WHERE id = $1");
        sqlx::query(&sql)
            .bind(id)
            .fetch_optional(&self.pool)
            .await?
            .as_ref()
            .map(code_from)
            .transpose()
    }

    async fn live_email_code(
        &self,
        user_id: &str,
        purpose: CodePurpose,
        now: Timestamp,
    ) -> StoreResult<Option<EmailCode>> {
        let sql = format!(
            "SELECT {CODE_COLUMNS} FROM email_codes WHERE user_id = $1 AND purpose = $2 AND used_at IS NULL \
             AND expires_at > $3 AND tries < $4 ORDER BY created_at DESC LIMIT 1"
        );
        sqlx::query(&sql)
            .bind(user_id)
            .bind(purpose.as_str())
            .bind(now)
            .bind(EMAIL_CODE_TRIES)
            .fetch_optional(&self.pool)
            .await?
            .as_ref()
            .map(code_from)
            .transpose()
    }

    async fn redeem_email_code(
        &self,
        proof: CodeProof<'_>,
        purpose: CodePurpose,
        effect: CodeEffect<'_>,
        now: Timestamp,
    ) -> StoreResult<CodeRedeemed> {
        const LIVE: &str = "purpose = $2 AND used_at IS NULL AND expires_at > $3 AND tries < $4";
        let mut tx = self.pool.begin().await?;
        // The first statement writes, so SQLite takes its write lock up front (see the module comment).
        let used = match proof {
            CodeProof::Code { id, code_hash } => {
                let sql = format!(
                    "UPDATE email_codes SET used_at = $3 WHERE id = $1 AND code_hash = $5 AND {LIVE} \
                     RETURNING {CODE_COLUMNS}"
                );
                sqlx::query(&sql)
                    .bind(id)
                    .bind(purpose.as_str())
                    .bind(now)
                    .bind(EMAIL_CODE_TRIES)
                    .bind(code_hash.to_vec())
                    .fetch_optional(&mut *tx)
                    .await?
            }
            CodeProof::Link { link_hash } => {
                let sql = format!(
                    "UPDATE email_codes SET used_at = $3 WHERE link_hash = $1 AND {LIVE} RETURNING {CODE_COLUMNS}"
                );
                sqlx::query(&sql)
                    .bind(link_hash.to_vec())
                    .bind(purpose.as_str())
                    .bind(now)
                    .bind(EMAIL_CODE_TRIES)
                    .fetch_optional(&mut *tx)
                    .await?
            }
        };
        if let Some(row) = used {
            let code = code_from(&row)?;
            return match apply(&mut tx, &code, effect).await? {
                Applied::Done => {
                    tx.commit().await?;
                    Ok(CodeRedeemed::Done(code))
                }
                // Nothing changes: the code stays as it was.
                Applied::Gone => Ok(CodeRedeemed::Gone),
                Applied::EmailTaken => Ok(CodeRedeemed::EmailTaken),
            };
        }
        let CodeProof::Code { id, .. } = proof else {
            // A link never counts tries: it cannot be typed, and an unknown link names no code.
            return Ok(CodeRedeemed::Gone);
        };
        let sql = format!(
            "UPDATE email_codes SET tries = tries + 1 WHERE id = $1 AND {LIVE} RETURNING tries"
        );
        let tries = sqlx::query(&sql)
            .bind(id)
            .bind(purpose.as_str())
            .bind(now)
            .bind(EMAIL_CODE_TRIES)
            .fetch_optional(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(match tries {
            Some(row) => {
                let tries: i64 = row.try_get("tries")?;
                if tries >= EMAIL_CODE_TRIES {
                    CodeRedeemed::Locked
                } else {
                    CodeRedeemed::Wrong {
                        tries_left: EMAIL_CODE_TRIES - tries,
                    }
                }
            }
            None => match self.find_email_code(id).await? {
                Some(c)
                    if c.purpose == purpose
                        && c.used_at.is_none()
                        && c.expires_at > now
                        && c.tries >= EMAIL_CODE_TRIES =>
                {
                    CodeRedeemed::Locked
                }
                _ => CodeRedeemed::Gone,
            },
        })
    }
}
