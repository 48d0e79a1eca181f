//! Slowing and then refusing repeated failed sign-ins, per user name and per client address.
//! Failures are counted in SQL (`login_attempts`) so that every replica sees them.

use std::time::Duration;

use crate::users::{Db, StoreError};

/// What to do with the next sign-in of a subject that failed `failures` times recently.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Allow,
    /// Answer only after this delay (makes guessing slow without locking anyone out).
    Slow(Duration),
    /// Refuse without checking the password (429) for this long.
    Refuse(Duration),
}

#[derive(Debug, Clone, Copy)]
pub struct Policy {
    /// Failures older than this are forgotten.
    pub window_seconds: i64,
    /// From this many failures on, each answer is delayed …
    pub slow_after: i64,
    /// … by this much per failure past `slow_after` (at most `max_delay`).
    pub delay_step: Duration,
    pub max_delay: Duration,
    /// From this many failures on, sign-ins are refused until the window has passed.
    pub refuse_after: i64,
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            window_seconds: 15 * 60,
            slow_after: 5,
            delay_step: Duration::from_millis(250),
            max_delay: Duration::from_secs(2),
            refuse_after: 10,
        }
    }
}

impl Policy {
    pub fn verdict(&self, failures: i64) -> Verdict {
        if failures >= self.refuse_after {
            Verdict::Refuse(Duration::from_secs(self.window_seconds as u64))
        } else if failures >= self.slow_after {
            let steps = (failures - self.slow_after + 1) as u32;
            Verdict::Slow((self.delay_step * steps).min(self.max_delay))
        } else {
            Verdict::Allow
        }
    }
}

pub fn user_subject(username: &str) -> String {
    format!("user:{username}")
}

pub fn addr_subject(addr: &str) -> String {
    format!("addr:{addr}")
}

/// The larger of the recent failure counts of `subjects`.
pub async fn failures(
    db: &Db,
    policy: &Policy,
    subjects: &[String],
    now: i64,
) -> Result<i64, StoreError> {
    let mut worst = 0;
    for subject in subjects {
        let n: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM login_attempts WHERE subject = $1 AND at > $2",
        )
        .bind(subject)
        .bind(now - policy.window_seconds)
        .fetch_one(db.pool())
        .await?;
        worst = worst.max(n);
    }
    Ok(worst)
}

/// Records one failure for each subject, and forgets the ones past the window.
pub async fn record_failure(
    db: &Db,
    policy: &Policy,
    subjects: &[String],
    now: i64,
) -> Result<(), StoreError> {
    for subject in subjects {
        sqlx::query("INSERT INTO login_attempts (subject, at) VALUES ($1, $2)")
            .bind(subject)
            .bind(now)
            .execute(db.pool())
            .await?;
    }
    sqlx::query("DELETE FROM login_attempts WHERE at <= $1")
        .bind(now - policy.window_seconds)
        .execute(db.pool())
        .await?;
    Ok(())
}

/// A successful sign-in clears the user's failures (not the address's: one good password
/// must not reset the count of an address that is guessing others).
pub async fn clear(db: &Db, subject: &str) -> Result<(), StoreError> {
    sqlx::query("DELETE FROM login_attempts WHERE subject = $1")
        .bind(subject)
        .execute(db.pool())
        .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_few_failures_are_allowed_then_slowed_then_refused() {
        let p = Policy::default();
        assert_eq!(p.verdict(0), Verdict::Allow);
        assert_eq!(p.verdict(4), Verdict::Allow);
        assert_eq!(p.verdict(5), Verdict::Slow(Duration::from_millis(250)));
        assert_eq!(p.verdict(6), Verdict::Slow(Duration::from_millis(500)));
        assert_eq!(p.verdict(9), Verdict::Slow(Duration::from_millis(1250)));
        assert_eq!(p.verdict(10), Verdict::Refuse(Duration::from_secs(900)));
    }

    #[test]
    fn the_delay_is_capped() {
        let p = Policy {
            refuse_after: 100,
            ..Policy::default()
        };
        assert_eq!(p.verdict(50), Verdict::Slow(Duration::from_secs(2)));
    }
}
