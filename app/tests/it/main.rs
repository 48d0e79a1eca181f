#![allow(clippy::unwrap_used)]
//! Integration tests: the real app on port 0 against a real influxd (KUBEMETER_TEST_INFLUX_URL,
//! started by `make test`), one fresh database per test.

mod billing;
mod browser;
mod collector;
mod contract;
mod demo;
mod errors;
mod extensions;
mod fixture;
mod grafana;
mod helpers;
mod history;
mod hourly;
mod image;
mod influx;
mod limits;
mod manifests;
mod process;
mod proxy;
mod rbac;
mod statements;
mod users;
mod web;
mod writer;
