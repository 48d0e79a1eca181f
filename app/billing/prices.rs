//! The price book: what a unit of each resource costs, and since when.
//!
//! The file named by `KUBEMETER_PRICES` is JSON. JSON, not TOML, because the project already
//! depends on `serde_json` (no new crate to audit and build), finance tools export it readily,
//! and the same document can be posted to the API as is. Example:
//!
//! ```json
//! {
//!   "currency": "EUR",
//!   "prices": [
//!     {"resource": "cpu", "price": "0.0310", "valid_from": "2026-01-01"},
//!     {"resource": "memory", "price": "0.0042", "valid_from": "2026-01-01"},
//!     {"resource": "gpu", "price": "1.20", "valid_from": "2026-01-01"},
//!     {"resource": "gpu", "gpu_model": "NVIDIA-A100-SXM4-40GB", "price": "2.10",
//!      "valid_from": "2026-01-01", "valid_to": "2026-10-15"},
//!     {"resource": "gpu", "gpu_model": "NVIDIA-A100-SXM4-40GB", "price": "1.90",
//!      "valid_from": "2026-10-15"},
//!     {"resource": "ephemeral_storage", "price": "0.0001", "valid_from": "2026-01-01"},
//!     {"resource": "network_in", "price": "0", "valid_from": "2026-01-01"},
//!     {"resource": "network_out", "price": "0.02", "valid_from": "2026-01-01"}
//!   ]
//! }
//! ```
//!
//! Units: `cpu` per core-hour, `memory` and `ephemeral_storage` per GiB-hour, `gpu` per
//! GPU-hour (an entry with `gpu_model` prices that model; one without is the default for the
//! others), `network_in` / `network_out` per GiB. `valid_from` is inclusive and `valid_to`
//! exclusive (absent: open-ended); both are dates (UTC midnight) or RFC 3339 times. Prices are
//! decimal strings (numbers are accepted too) with at most 6 decimal places, kept as integer
//! micro-units so no cost is ever a float.

use std::collections::BTreeSet;

use chrono::DateTime;
use serde::Deserialize;

use super::decimal::{parse_decimal, FracSum};
use super::quantities::{
    BYTES_PER_GIB, BYTE_NS_PER_GIB_HOUR, GPU_NS_PER_GPU_HOUR, MCORE_NS_PER_CORE_HOUR,
};
use super::samples::Window;

/// Micro-units in one unit of currency.
pub const MICROS: u128 = 1_000_000;
/// The highest price accepted (per unit), in micro-units; it keeps every product exact.
const MAX_PRICE_MICROS: u128 = 1_000_000 * MICROS;

/// A priced resource.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Resource {
    Cpu,
    Memory,
    Gpu,
    EphemeralStorage,
    NetworkIn,
    NetworkOut,
}

impl Resource {
    pub const ALL: [Resource; 6] = [
        Resource::Cpu,
        Resource::Memory,
        Resource::Gpu,
        Resource::EphemeralStorage,
        Resource::NetworkIn,
        Resource::NetworkOut,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Resource::Cpu => "cpu",
            Resource::Memory => "memory",
            Resource::Gpu => "gpu",
            Resource::EphemeralStorage => "ephemeral_storage",
            Resource::NetworkIn => "network_in",
            Resource::NetworkOut => "network_out",
        }
    }

    pub fn parse(s: &str) -> Option<Resource> {
        Resource::ALL.into_iter().find(|r| r.name() == s)
    }

    /// What one priced unit is.
    pub fn unit(self) -> &'static str {
        match self {
            Resource::Cpu => "core-hour",
            Resource::Memory | Resource::EphemeralStorage => "GiB-hour",
            Resource::Gpu => "GPU-hour",
            Resource::NetworkIn | Resource::NetworkOut => "GiB",
        }
    }

    /// Base units (see `quantities`) in one priced unit.
    pub fn base_per_unit(self) -> u128 {
        match self {
            Resource::Cpu => MCORE_NS_PER_CORE_HOUR,
            Resource::Memory | Resource::EphemeralStorage => BYTE_NS_PER_GIB_HOUR,
            Resource::Gpu => GPU_NS_PER_GPU_HOUR,
            Resource::NetworkIn | Resource::NetworkOut => BYTES_PER_GIB,
        }
    }
}

/// One price with its validity `[valid_from, valid_to)`, ns since the epoch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PriceEntry {
    pub resource: Resource,
    /// GPU prices only: the model this price is for; `None` is the default.
    pub gpu_model: Option<String>,
    /// Price of one unit in micro-units of the book's currency.
    pub micros: u128,
    pub valid_from: i64,
    pub valid_to: Option<i64>,
}

impl PriceEntry {
    fn applies_at(&self, t: i64) -> bool {
        self.valid_from <= t && self.valid_to.is_none_or(|end| t < end)
    }
}

/// A validated price book in one currency.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PriceBook {
    currency: String,
    entries: Vec<PriceEntry>,
}

/// Why a price book was refused, as one sentence for the operator.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct PriceBookError(pub String);

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawBook {
    currency: String,
    prices: Vec<RawEntry>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawEntry {
    resource: String,
    #[serde(default)]
    gpu_model: Option<String>,
    price: serde_json::Value,
    #[serde(default)]
    currency: Option<String>,
    valid_from: String,
    #[serde(default)]
    valid_to: Option<String>,
}

fn parse_time(s: &str) -> Option<i64> {
    crate::vocab::time::parse_instant(s)
        .ok()
        .map(crate::vocab::time::to_ns)
}

fn show_time(t: i64) -> String {
    let d = DateTime::from_timestamp_nanos(t);
    if t % (86_400 * 1_000_000_000) == 0 {
        d.format("%Y-%m-%d").to_string()
    } else {
        d.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true)
    }
}

impl PriceBook {
    /// Parses and validates a price book; the error says what is wrong and where.
    pub fn from_json(text: &str) -> Result<PriceBook, PriceBookError> {
        let err = PriceBookError;
        let raw: RawBook = serde_json::from_str(text)
            .map_err(|e| err(format!("The price book is not valid: {e}.")))?;
        let currency = raw.currency.trim().to_string();
        if currency.len() != 3 || !currency.bytes().all(|b| b.is_ascii_uppercase()) {
            return Err(err(format!(
                "The price book's currency {currency:?} is not a three-letter code such as \"EUR\"."
            )));
        }
        let mut entries = Vec::with_capacity(raw.prices.len());
        for (i, e) in raw.prices.into_iter().enumerate() {
            let n = i + 1;
            let resource = Resource::parse(e.resource.trim()).ok_or_else(|| {
                let known: Vec<&str> = Resource::ALL.iter().map(|r| r.name()).collect();
                err(format!(
                    "Price {n} has an unknown resource {:?}; use one of {}.",
                    e.resource,
                    known.join(", ")
                ))
            })?;
            if let Some(c) = &e.currency {
                if c.trim() != currency {
                    return Err(err(format!(
                        "Price {n} is in {c} but the price book is in {currency}; one book has one currency."
                    )));
                }
            }
            if e.gpu_model.is_some() && resource != Resource::Gpu {
                return Err(err(format!(
                    "Price {n} names a gpu_model but is a {} price; only gpu prices have models.",
                    resource.name()
                )));
            }
            let text = match &e.price {
                serde_json::Value::String(s) => s.clone(),
                serde_json::Value::Number(x) => x.to_string(),
                other => {
                    return Err(err(format!(
                        "Price {n} ({}) has price {other}; write it as a decimal string such as \"0.031\".",
                        resource.name()
                    )))
                }
            };
            if text.trim_start().starts_with('-') {
                return Err(err(format!(
                    "Price {n} ({}) is negative ({text}); prices must be zero or more.",
                    resource.name()
                )));
            }
            let micros = parse_decimal(&text, 6)
                .map_err(|why| err(format!("Price {n} ({}): {why}.", resource.name())))?;
            if micros > MAX_PRICE_MICROS {
                return Err(err(format!(
                    "Price {n} ({}) is {text} per {}, more than 1000000; is the unit right?",
                    resource.name(),
                    resource.unit()
                )));
            }
            let valid_from = parse_time(e.valid_from.trim()).ok_or_else(|| {
                err(format!(
                    "Price {n} ({}) has valid_from {:?}, which is not a date such as \"2026-10-01\".",
                    resource.name(),
                    e.valid_from
                ))
            })?;
            let valid_to = match &e.valid_to {
                None => None,
                Some(s) => Some(parse_time(s.trim()).ok_or_else(|| {
                    err(format!(
                        "Price {n} ({}) has valid_to {s:?}, which is not a date such as \"2026-11-01\".",
                        resource.name()
                    ))
                })?),
            };
            if valid_to.is_some_and(|end| end <= valid_from) {
                return Err(err(format!(
                    "Price {n} ({}) ends before it starts: valid_to must be after valid_from.",
                    resource.name()
                )));
            }
            entries.push(PriceEntry {
                resource,
                gpu_model: e.gpu_model.map(|m| m.trim().to_string()),
                micros,
                valid_from,
                valid_to,
            });
        }
        // Two prices for the same thing at the same time would make a cost ambiguous.
        for (i, a) in entries.iter().enumerate() {
            for (j, b) in entries.iter().enumerate().skip(i + 1) {
                if a.resource != b.resource || a.gpu_model != b.gpu_model {
                    continue;
                }
                let start = a.valid_from.max(b.valid_from);
                let overlap =
                    a.valid_to.is_none_or(|e| start < e) && b.valid_to.is_none_or(|e| start < e);
                if overlap {
                    let what = match &a.gpu_model {
                        Some(m) => format!("{} ({m})", a.resource.name()),
                        None => a.resource.name().to_string(),
                    };
                    return Err(err(format!(
                        "Prices {} and {} for {what} overlap: both apply on {}.",
                        i + 1,
                        j + 1,
                        show_time(start)
                    )));
                }
            }
        }
        Ok(PriceBook { currency, entries })
    }

    pub fn currency(&self) -> &str {
        &self.currency
    }

    pub fn entries(&self) -> &[PriceEntry] {
        &self.entries
    }

    /// `w` cut at every time a price starts or ends inside it, in order. Within a segment every
    /// price is constant, so a line whose price changes mid-month becomes two lines.
    pub fn segments(&self, w: Window) -> Vec<Window> {
        let cuts: BTreeSet<i64> = self
            .entries
            .iter()
            .flat_map(|e| [Some(e.valid_from), e.valid_to])
            .flatten()
            .filter(|t| w.from < *t && *t < w.to)
            .collect();
        let mut out = Vec::with_capacity(cuts.len() + 1);
        let mut from = w.from;
        for t in cuts.into_iter().chain([w.to]) {
            out.push(Window { from, to: t });
            from = t;
        }
        out
    }

    /// Price of one unit of `resource` at `t` in micro-units; for GPUs the model's own price,
    /// else the default GPU price. `None`: nothing priced it then.
    pub fn price_at(&self, resource: Resource, gpu_model: Option<&str>, t: i64) -> Option<u128> {
        let find = |model: Option<&str>| {
            self.entries
                .iter()
                .find(|e| {
                    e.resource == resource && e.gpu_model.as_deref() == model && e.applies_at(t)
                })
                .map(|e| e.micros)
        };
        match gpu_model {
            Some(m) if resource == Resource::Gpu => find(Some(m)).or_else(|| find(None)),
            _ => find(None),
        }
    }

    /// Cost in cents of quantities (base units) of one resource over a segment starting at
    /// `t`: the exact sum over `(gpu model, quantity)` pairs, rounded once, half to even.
    /// `None` when some non-zero quantity has no price.
    pub fn cost_cents<'a>(
        &self,
        resource: Resource,
        t: i64,
        quantities: impl IntoIterator<Item = (Option<&'a str>, u128)>,
    ) -> Option<u128> {
        // cents = quantity / base_per_unit × micros / 10_000
        let mut sum = FracSum::new(resource.base_per_unit() * (MICROS / 100));
        for (model, q) in quantities {
            if q == 0 {
                continue;
            }
            sum.add_product(q, self.price_at(resource, model, t)?);
        }
        Some(sum.round_half_even())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(date: &str) -> i64 {
        parse_time(date).unwrap()
    }

    fn book(prices: &str) -> Result<PriceBook, PriceBookError> {
        PriceBook::from_json(&format!(r#"{{"currency": "EUR", "prices": [{prices}]}}"#))
    }

    #[test]
    fn a_price_change_mid_month_splits_the_window() {
        let b = book(
            r#"{"resource": "cpu", "price": "0.04", "valid_from": "2026-01-01", "valid_to": "2026-10-16"},
               {"resource": "cpu", "price": "0.03", "valid_from": "2026-10-16"}"#,
        )
        .unwrap();
        let oct = Window::new(ts("2026-10-01"), ts("2026-11-01")).unwrap();
        let segs = b.segments(oct);
        assert_eq!(
            segs,
            [
                Window {
                    from: ts("2026-10-01"),
                    to: ts("2026-10-16")
                },
                Window {
                    from: ts("2026-10-16"),
                    to: ts("2026-11-01")
                }
            ]
        );
        // 2 cores held for the first 15 days: 2 × 360 h = 720 core-hours × 0.04 = 28.80 EUR.
        let q = 720 * MCORE_NS_PER_CORE_HOUR;
        assert_eq!(
            b.cost_cents(Resource::Cpu, segs[0].from, [(None, q)]),
            Some(2_880)
        );
        // …and 2 cores for the other 16 days: 768 core-hours × 0.03 = 23.04 EUR.
        let q = 768 * MCORE_NS_PER_CORE_HOUR;
        assert_eq!(
            b.cost_cents(Resource::Cpu, segs[1].from, [(None, q)]),
            Some(2_304)
        );
        // Nothing priced memory: a non-zero quantity is unpriced, a zero one costs nothing.
        assert_eq!(
            b.cost_cents(Resource::Memory, segs[0].from, [(None, 1)]),
            None
        );
        assert_eq!(
            b.cost_cents(Resource::Memory, segs[0].from, [(None, 0)]),
            Some(0)
        );
    }

    #[test]
    fn gpu_models_have_their_own_price_and_fall_back_to_the_default() {
        let b = book(
            r#"{"resource": "gpu", "price": "1.00", "valid_from": "2026-01-01"},
               {"resource": "gpu", "gpu_model": "A100", "price": 2.5, "valid_from": "2026-01-01"}"#,
        )
        .unwrap();
        let t = ts("2026-10-01");
        assert_eq!(b.price_at(Resource::Gpu, Some("A100"), t), Some(2_500_000));
        assert_eq!(b.price_at(Resource::Gpu, Some("T4"), t), Some(1_000_000));
        // 1 A100-hour (2.50) + 2 T4-hours (2 × 1.00) = 4.50.
        let h = GPU_NS_PER_GPU_HOUR;
        assert_eq!(
            b.cost_cents(Resource::Gpu, t, [(Some("A100"), h), (Some("T4"), 2 * h)]),
            Some(450)
        );
        // Before any price: unpriced.
        assert_eq!(b.price_at(Resource::Gpu, None, ts("2025-12-31")), None);
    }

    #[test]
    fn costs_round_half_to_even_cents_once_per_line() {
        let b = book(r#"{"resource": "network_out", "price": "0.01", "valid_from": "2026-01-01"}"#)
            .unwrap();
        let t = ts("2026-10-01");
        // 0.5 GiB × 0.01 = 0.005 → 0.00 (to even); 1.5 GiB → 0.015 → 0.02.
        let half = BYTES_PER_GIB / 2;
        assert_eq!(
            b.cost_cents(Resource::NetworkOut, t, [(None, half)]),
            Some(0)
        );
        assert_eq!(
            b.cost_cents(Resource::NetworkOut, t, [(None, 3 * half)]),
            Some(2)
        );
    }

    #[test]
    fn bad_books_are_refused_with_a_sentence_that_says_why() {
        let e = |p: &str| book(p).unwrap_err().0;
        assert!(
            e(r#"{"resource": "cpus", "price": "1", "valid_from": "2026-01-01"}"#)
                .contains("unknown resource \"cpus\"; use one of cpu, memory")
        );
        assert!(
            e(r#"{"resource": "cpu", "price": "-1", "valid_from": "2026-01-01"}"#)
                .contains("is negative")
        );
        assert!(e(
            r#"{"resource": "cpu", "price": "1", "currency": "USD", "valid_from": "2026-01-01"}"#
        )
        .contains("is in USD but the price book is in EUR"));
        assert_eq!(
            e(
                r#"{"resource": "cpu", "price": "1", "valid_from": "2026-01-01", "valid_to": "2026-03-01"},
                 {"resource": "cpu", "price": "2", "valid_from": "2026-02-01"}"#
            ),
            "Prices 1 and 2 for cpu overlap: both apply on 2026-02-01."
        );
        assert!(
            e(r#"{"resource": "cpu", "price": "1", "valid_from": "2026-13-01"}"#)
                .contains("not a date")
        );
        assert!(e(r#"{"resource": "cpu", "price": "1", "valid_from": "2026-02-01", "valid_to": "2026-01-01"}"#)
            .contains("ends before it starts"));
        assert!(e(r#"{"resource": "memory", "gpu_model": "A100", "price": "1", "valid_from": "2026-01-01"}"#)
            .contains("only gpu prices have models"));
        assert!(e(
            r#"{"resource": "cpu", "price": "1", "valid_from": "2026-01-01", "colour": "red"}"#
        )
        .contains("unknown field `colour`"));
        assert!(
            PriceBook::from_json(r#"{"currency": "euro", "prices": []}"#)
                .unwrap_err()
                .0
                .contains("three-letter code")
        );
        // Adjacent validity is not an overlap; different GPU models never overlap.
        assert!(book(
            r#"{"resource": "cpu", "price": "1", "valid_from": "2026-01-01", "valid_to": "2026-02-01"},
               {"resource": "cpu", "price": "2", "valid_from": "2026-02-01"},
               {"resource": "gpu", "gpu_model": "A100", "price": "2", "valid_from": "2026-01-01"},
               {"resource": "gpu", "price": "1", "valid_from": "2026-01-01"}"#
        )
        .is_ok());
    }
}
