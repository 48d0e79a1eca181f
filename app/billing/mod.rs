//! Billing math: exact quantities, rollups, statements, prices and their renderings.
//!
//! Pure functions over samples already in memory: no HTTP, SQL, InfluxDB or files here, so the
//! rules can be tested exhaustively and every caller (API, dashboard, export, rollup job) gets
//! the same numbers.
//!
//! * [`samples`]: inputs (times in ns since the epoch; windows half-open `[from, to)`), each
//!   sample with its series' nominal interval.
//! * [`nominal`]: where that interval comes from (the collector's record, or the series' own
//!   spacing): a property of the data, never of the process that reads it.
//! * [`quantities`]: the accounting rule (each sample accounts for the time since its
//!   predecessor and belongs to the window containing it), counters with resets, gauges with
//!   the gap rule, billing modes interval by interval.
//! * [`rollup`]: hourly rollups that re-aggregate exactly; rollups + raw edges = raw.
//! * [`statement`]: grouping, price segments, costs, totals, coverage.
//! * [`capacity`]: allocated + idle = node capacity, overcommit apart.
//! * [`prices`]: the price book (JSON), validated.
//! * [`render`]: CSV and JSON, deterministic to the byte.
//! * [`decimal`], [`intervals`]: exact fixed-point and interval-set helpers.

pub mod capacity;
pub mod decimal;
pub mod intervals;
pub mod nominal;
pub mod prices;
pub mod quantities;
pub mod render;
pub mod rollup;
pub mod samples;
pub mod slices;
pub mod statement;

#[cfg(test)]
mod props;

pub use capacity::{
    allocatable, attach_capacity, node_capacity, Allocatable, Capacity, CapacityLine, NodeCapacity,
};
pub use intervals::IntervalSet;
pub use prices::{PriceBook, PriceBookError, PriceEntry, Resource};
pub use quantities::{pod_usage, CpuSource, Mode, Quantities, Triple, Usage};
pub use render::{to_csv, to_json};
pub use rollup::{
    rollup_hour, rollup_hours, usage_from_raw, usage_from_rollups, PodHour, PodUsage,
};
pub use samples::{
    AcceleratorSamples, ContainerSamples, CounterSample, GaugeSample, NodeSamples, PodIdentity,
    PodSamples, Window,
};
pub use statement::{
    build_statement, statement_from_raw, statement_from_rollups, Cost, GroupBy, Line, Modes,
    Statement,
};
