//! kubemeter: meters what every Kubernetes workload uses and serves it to people and to
//! billing systems. `main.rs` is a thin shell over this library.

#![cfg_attr(test, allow(clippy::unwrap_used))]

pub mod api;
pub mod auth;
pub mod billing;
pub mod catalogue;
pub mod cli;
pub mod collector;
pub mod config;
pub mod demo;
pub mod disconnect;
pub mod health;
pub mod heavy;
pub mod http_metrics;
pub mod influx;
pub mod jobs;
pub mod metering;
pub mod simulator;
#[cfg(test)]
mod splitter_props;
pub mod startup;
pub mod telemetry;
pub mod users;
pub mod vocab;
pub mod web;
