//! Bounds on the requests that make InfluxDB work hard (statements, aggregations, charts):
//! a few at a time per user and in all, a deadline each, and nothing left running when the
//! client hangs up. A cheap request never waits behind them.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix_web::HttpRequest;
use tokio::sync::Semaphore;

use crate::disconnect;

/// The limits, from `serve`'s settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HeavyLimits {
    /// Heavy requests one user may have running at once.
    pub per_user: usize,
    /// Heavy requests running at once in this process.
    pub total: usize,
    /// How long a heavy request may wait for one of the `total` places.
    pub queue_wait: Duration,
    /// How long a heavy request may take in all.
    pub deadline: Duration,
}

impl Default for HeavyLimits {
    fn default() -> Self {
        HeavyLimits {
            per_user: 2,
            total: 8,
            queue_wait: Duration::from_secs(10),
            deadline: Duration::from_secs(120),
        }
    }
}

/// Seconds a refused caller is told to wait (`Retry-After`).
pub const RETRY_AFTER_SECS: u64 = 5;

/// Why heavy work was not done.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("user {user:?} already has {limit} heavy requests (statements, aggregations) running; wait for one to finish and retry")]
    UserBusy { user: String, limit: usize },
    #[error("the server is busy with other heavy requests; retry in {RETRY_AFTER_SECS} s")]
    Busy,
    #[error("the request took longer than {} s (KUBEMETER_REQUEST_TIMEOUT) and was stopped; ask for a shorter window or a coarser grouping", .0.as_secs())]
    Deadline(Duration),
    #[error("the client closed the connection; the request was stopped")]
    ClientGone,
}

/// The running heavy requests.
pub struct HeavyWork {
    limits: HeavyLimits,
    total: Semaphore,
    per_user: Arc<Mutex<HashMap<String, usize>>>,
}

impl HeavyWork {
    pub fn new(limits: HeavyLimits) -> HeavyWork {
        HeavyWork {
            total: Semaphore::new(limits.total.max(1)),
            per_user: Arc::new(Mutex::new(HashMap::new())),
            limits,
        }
    }

    /// Runs `work` for `user` within the limits; stops it (dropping it, which cancels its
    /// InfluxDB queries) at the deadline or as soon as the client of `req` has gone.
    pub async fn run<T>(
        &self,
        req: &HttpRequest,
        user: &str,
        work: impl Future<Output = T>,
    ) -> Result<T, Refusal> {
        let _user_slot = self.enter_user(user)?;
        let _permit = tokio::time::timeout(self.limits.queue_wait, self.total.acquire())
            .await
            .map_err(|_| Refusal::Busy)?
            .map_err(|_| Refusal::Busy)?;
        tokio::select! {
            done = tokio::time::timeout(self.limits.deadline, work) => {
                done.map_err(|_| Refusal::Deadline(self.limits.deadline))
            }
            () = disconnect::gone(req) => {
                tracing::info!(user, path = req.path(), "client hung up; heavy request stopped");
                Err(Refusal::ClientGone)
            }
        }
    }

    fn enter_user(&self, user: &str) -> Result<UserSlot, Refusal> {
        let mut running = self.per_user.lock().unwrap_or_else(|p| p.into_inner());
        let n = running.entry(user.to_string()).or_insert(0);
        if *n >= self.limits.per_user {
            return Err(Refusal::UserBusy {
                user: user.to_string(),
                limit: self.limits.per_user,
            });
        }
        *n += 1;
        Ok(UserSlot {
            user: user.to_string(),
            running: Arc::clone(&self.per_user),
        })
    }
}

/// One of a user's places; given back when dropped (also when the request is abandoned).
struct UserSlot {
    user: String,
    running: Arc<Mutex<HashMap<String, usize>>>,
}

impl Drop for UserSlot {
    fn drop(&mut self) {
        let mut running = self.running.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(n) = running.get_mut(&self.user) {
            *n -= 1;
            if *n == 0 {
                running.remove(&self.user);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::test::TestRequest;

    fn work(limits: HeavyLimits) -> HeavyWork {
        HeavyWork::new(limits)
    }

    #[actix_web::test]
    async fn a_user_past_their_limit_is_refused_while_others_are_served() {
        let heavy = work(HeavyLimits {
            per_user: 1,
            ..HeavyLimits::default()
        });
        let req = TestRequest::default().to_http_request();
        let (release, wait) = tokio::sync::oneshot::channel::<()>();
        let first = heavy.run(&req, "ann", async {
            let _ = wait.await;
            1
        });
        let second = async {
            tokio::task::yield_now().await;
            let refused = heavy.run(&req, "ann", async { 2 }).await;
            let other = heavy.run(&req, "bob", async { 3 }).await;
            let _ = release.send(());
            (refused, other)
        };
        let (first, (refused, other)) = tokio::join!(first, second);
        assert_eq!(first, Ok(1));
        assert_eq!(
            refused,
            Err(Refusal::UserBusy {
                user: "ann".into(),
                limit: 1
            })
        );
        assert_eq!(other, Ok(3));
        // The place is given back: ann may run again.
        assert_eq!(heavy.run(&req, "ann", async { 4 }).await, Ok(4));
    }

    #[actix_web::test]
    async fn work_past_the_deadline_is_stopped() {
        let heavy = work(HeavyLimits {
            deadline: Duration::from_millis(20),
            ..HeavyLimits::default()
        });
        let req = TestRequest::default().to_http_request();
        let slow = heavy.run(&req, "ann", tokio::time::sleep(Duration::from_secs(60)));
        assert_eq!(
            slow.await,
            Err(Refusal::Deadline(Duration::from_millis(20)))
        );
        assert!(
            heavy.per_user.lock().unwrap().is_empty(),
            "the place is given back"
        );
    }

    #[actix_web::test]
    async fn when_every_place_is_taken_a_request_waits_then_hears_busy() {
        let heavy = work(HeavyLimits {
            total: 1,
            queue_wait: Duration::from_millis(20),
            ..HeavyLimits::default()
        });
        let req = TestRequest::default().to_http_request();
        let (release, wait) = tokio::sync::oneshot::channel::<()>();
        let first = heavy.run(&req, "ann", async {
            let _ = wait.await;
        });
        let second = async {
            tokio::task::yield_now().await;
            let r = heavy.run(&req, "bob", async {}).await;
            let _ = release.send(());
            r
        };
        let (first, second) = tokio::join!(first, second);
        assert_eq!(first, Ok(()));
        assert_eq!(second, Err(Refusal::Busy));
    }
}
