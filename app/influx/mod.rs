//! InfluxDB through its v1 HTTP protocol: line protocol for writes, InfluxQL for reads.
//!
//! The same two endpoints (`/write`, `/query`) are served by InfluxDB 1.x natively, by 2.x
//! through its v1-compatibility API and by 3.x, so this is the only storage protocol we speak.
//! `line` and `ql` are pure; `client` is the HTTP side.

pub mod client;
pub mod line;
pub mod ql;

pub use client::{InfluxClient, InfluxConfig, InfluxError, Series};
