//! Slowing and refusing a client address that keeps failing to authenticate, before any
//! password is hashed. It is kept in memory so that a flood of wrong credentials costs a map
//! lookup each, not a SQL write and an argon2 verification; the sign-in lockout in SQL
//! ([`super::lockout`]) is what replicas share.
//!
//! IPv6 clients are counted by their /64 (what one host is usually given), so an attacker
//! cannot walk through addresses of one network to start afresh.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::lockout::{Policy, Verdict};

/// Addresses remembered at most; past it, the benign ones are forgotten first.
const MAX_ADDRESSES: usize = 100_000;

/// The address policy: an address may fail 10 times in 15 minutes unhindered (a person
/// mistyping, a billing system with an old password), is then slowed, and after 30 failures
/// refused until the 15 minutes are over.
pub fn address_policy() -> Policy {
    Policy {
        window_seconds: 15 * 60,
        slow_after: 10,
        delay_step: Duration::from_millis(250),
        max_delay: Duration::from_secs(2),
        refuse_after: 30,
    }
}

#[derive(Debug, Clone, Copy)]
struct Entry {
    since: Instant,
    failures: i64,
}

/// Failures per client address in the current window.
pub struct AddressThrottle {
    policy: Policy,
    entries: Mutex<HashMap<IpAddr, Entry>>,
}

impl Default for AddressThrottle {
    fn default() -> Self {
        AddressThrottle::new(address_policy())
    }
}

impl AddressThrottle {
    pub fn new(policy: Policy) -> AddressThrottle {
        AddressThrottle {
            policy,
            entries: Mutex::new(HashMap::new()),
        }
    }

    fn window(&self) -> Duration {
        Duration::from_secs(self.policy.window_seconds.max(0) as u64)
    }

    /// What to do with the next attempt from `addr`. A refusal carries the time left until
    /// the address's window ends.
    pub fn verdict(&self, addr: IpAddr) -> Verdict {
        let entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        let Some(e) = entries.get(&key(addr)) else {
            return Verdict::Allow;
        };
        let age = e.since.elapsed();
        if age >= self.window() {
            return Verdict::Allow;
        }
        match self.policy.verdict(e.failures) {
            Verdict::Refuse(_) => {
                Verdict::Refuse((self.window() - age).max(Duration::from_secs(1)))
            }
            v => v,
        }
    }

    /// The verdict for an attempt from `addr`, counting the attempt as a failure at once (in
    /// one step, so concurrent attempts see each other); [`AddressThrottle::forgive`] takes it
    /// back when it succeeds.
    pub fn attempt(&self, addr: IpAddr) -> Verdict {
        let window = self.window();
        let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        if entries.len() >= MAX_ADDRESSES {
            self.forget(&mut entries);
        }
        let now = Instant::now();
        let e = entries.entry(key(addr)).or_insert(Entry {
            since: now,
            failures: 0,
        });
        if e.since.elapsed() >= window {
            *e = Entry {
                since: now,
                failures: 0,
            };
        }
        match self.policy.verdict(e.failures) {
            Verdict::Refuse(_) => {
                Verdict::Refuse((window - e.since.elapsed()).max(Duration::from_secs(1)))
            }
            v => {
                e.failures += 1;
                v
            }
        }
    }

    /// Takes back one counted attempt of `addr` (it succeeded).
    pub fn forgive(&self, addr: IpAddr) {
        let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(e) = entries.get_mut(&key(addr)) {
            e.failures = (e.failures - 1).max(0);
        }
    }

    /// Counts one failure from `addr`.
    pub fn record_failure(&self, addr: IpAddr) {
        let window = self.window();
        let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        if entries.len() >= MAX_ADDRESSES {
            self.forget(&mut entries);
        }
        let now = Instant::now();
        let e = entries.entry(key(addr)).or_insert(Entry {
            since: now,
            failures: 0,
        });
        if e.since.elapsed() >= window {
            *e = Entry {
                since: now,
                failures: 0,
            };
        }
        e.failures += 1;
    }

    /// Makes room: windows that are over first, then addresses not yet slowed.
    fn forget(&self, entries: &mut HashMap<IpAddr, Entry>) {
        let window = self.window();
        entries.retain(|_, e| e.since.elapsed() < window);
        if entries.len() >= MAX_ADDRESSES {
            let slow_after = self.policy.slow_after;
            entries.retain(|_, e| e.failures >= slow_after);
        }
    }
}

/// The address an attempt is counted under: IPv4 as is, IPv6 by its /64 (IPv4-mapped IPv6
/// as the IPv4 address).
fn key(addr: IpAddr) -> IpAddr {
    match addr {
        IpAddr::V4(_) => addr,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let s = v6.segments();
                IpAddr::V6(std::net::Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
            }
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn an_address_is_allowed_then_slowed_then_refused_for_the_rest_of_its_window() {
        let t = AddressThrottle::default();
        let a = ip("192.0.2.7");
        for _ in 0..9 {
            t.record_failure(a);
        }
        assert_eq!(t.verdict(a), Verdict::Allow);
        t.record_failure(a);
        assert_eq!(t.verdict(a), Verdict::Slow(Duration::from_millis(250)));
        for _ in 0..20 {
            t.record_failure(a);
        }
        match t.verdict(a) {
            Verdict::Refuse(left) => {
                assert!(left > Duration::from_secs(14 * 60) && left <= Duration::from_secs(900))
            }
            other => panic!("expected a refusal, got {other:?}"),
        }
        // Another address is not affected.
        assert_eq!(t.verdict(ip("192.0.2.8")), Verdict::Allow);
    }

    #[test]
    fn concurrent_attempts_are_counted_as_they_start_and_successes_taken_back() {
        let t = std::sync::Arc::new(AddressThrottle::default());
        let a = ip("192.0.2.7");
        // 40 attempts at once from one address: 30 are let through (each counted before it is
        // checked), the other 10 refused without being checked.
        let verdicts: Vec<Verdict> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..40).map(|_| s.spawn(|| t.attempt(a))).collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        let refused = verdicts
            .iter()
            .filter(|v| matches!(v, Verdict::Refuse(_)))
            .count();
        assert_eq!(refused, 10);
        // A success takes its count back: the address is no longer refused after one.
        t.forgive(a);
        assert!(matches!(t.verdict(a), Verdict::Slow(_)));
    }

    #[test]
    fn failures_are_forgotten_when_the_window_is_over() {
        let t = AddressThrottle::new(Policy {
            window_seconds: 0,
            ..address_policy()
        });
        let a = ip("192.0.2.7");
        for _ in 0..50 {
            t.record_failure(a);
        }
        assert_eq!(t.verdict(a), Verdict::Allow);
    }

    #[test]
    fn ipv6_addresses_of_one_network_count_together() {
        let t = AddressThrottle::default();
        for i in 0..30 {
            t.record_failure(ip(&format!("2001:db8:1:2::{i:x}")));
        }
        assert!(matches!(
            t.verdict(ip("2001:db8:1:2:ffff::1")),
            Verdict::Refuse(_)
        ));
        assert_eq!(t.verdict(ip("2001:db8:1:3::1")), Verdict::Allow);
        // An IPv4 client seen through an IPv6 socket is its IPv4 address.
        for _ in 0..30 {
            t.record_failure(ip("::ffff:192.0.2.9"));
        }
        assert!(matches!(t.verdict(ip("192.0.2.9")), Verdict::Refuse(_)));
    }

    #[test]
    fn the_map_stays_bounded_under_a_flood_of_addresses() {
        let t = AddressThrottle::default();
        for i in 0..(MAX_ADDRESSES as u32 + 10) {
            t.record_failure(IpAddr::V4(std::net::Ipv4Addr::from(i)));
        }
        assert!(t.entries.lock().unwrap().len() <= MAX_ADDRESSES);
    }
}
