//! Dashboard sessions in SQL: a random token in an HttpOnly cookie, its SHA-256 in the
//! `sessions` table with the session's CSRF token. Signing out deletes the row, so a copied
//! cookie stops working at once.

use password_hash::rand_core::{OsRng, RngCore};
use sha2::{Digest, Sha256};
use sqlx::Row;

use super::Principal;
use crate::users::{Db, Role, Scope, StoreError};

/// How long a session lasts after sign-in, whatever its use.
pub const SESSION_TTL_SECONDS: i64 = 12 * 3600;

/// A signed-in browser.
#[derive(Debug, Clone)]
pub struct Session {
    pub principal: Principal,
    /// Every form of this session carries it; a POST without it is refused.
    pub csrf_token: String,
}

/// 32 random bytes as 64 hex digits.
pub fn random_token() -> String {
    let mut bytes = [0u8; 32];
    OsRng.fill_bytes(&mut bytes);
    hex(&bytes)
}

/// Bytes as lower-case hex digits.
pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn token_hash(token: &str) -> String {
    hex(&Sha256::digest(token.as_bytes()))
}

/// Starts a session for `username`; returns the cookie's token.
pub async fn create(db: &Db, username: &str, now: i64) -> Result<String, StoreError> {
    let token = random_token();
    sqlx::query(
        "INSERT INTO sessions (token_hash, username, csrf_token, created_at, expires_at) \
         VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(token_hash(&token))
    .bind(username)
    .bind(random_token())
    .bind(now)
    .bind(now + SESSION_TTL_SECONDS)
    .execute(db.pool())
    .await?;
    // Expired sessions of anyone are of no use; clear them as new ones start.
    sqlx::query("DELETE FROM sessions WHERE expires_at <= $1")
        .bind(now)
        .execute(db.pool())
        .await?;
    Ok(token)
}

/// The live session of `token`, if any: not expired, and its user still enabled.
pub async fn find(db: &Db, token: &str, now: i64) -> Result<Option<Session>, StoreError> {
    let row = sqlx::query(
        "SELECT s.csrf_token, u.username, u.role, u.namespaces FROM sessions s \
         JOIN users u ON u.username = s.username \
         WHERE s.token_hash = $1 AND s.expires_at > $2 AND u.disabled = 0",
    )
    .bind(token_hash(token))
    .bind(now)
    .fetch_optional(db.pool())
    .await?;
    let Some(row) = row else { return Ok(None) };
    let role: String = row.try_get("role")?;
    let namespaces: String = row.try_get("namespaces")?;
    Ok(Some(Session {
        principal: Principal {
            username: row.try_get("username")?,
            // An unknown role in the table grants the least.
            role: Role::parse(&role).unwrap_or(Role::Viewer),
            scope: Scope::from_column(&namespaces),
        },
        csrf_token: row.try_get("csrf_token")?,
    }))
}

/// Ends the session of `token` (nothing happens if there is none).
pub async fn revoke(db: &Db, token: &str) -> Result<(), StoreError> {
    sqlx::query("DELETE FROM sessions WHERE token_hash = $1")
        .bind(token_hash(token))
        .execute(db.pool())
        .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_64_hex_digits_and_differ() {
        let (a, b) = (random_token(), random_token());
        assert_eq!(a.len(), 64);
        assert!(a.chars().all(|c| c.is_ascii_hexdigit()));
        assert_ne!(a, b);
    }

    #[test]
    fn the_stored_hash_is_not_the_token() {
        let t = random_token();
        assert_ne!(token_hash(&t), t);
        assert_eq!(token_hash(&t), token_hash(&t));
    }
}
