//! Jobs that run to completion: the billing export and the hourly rollups.

pub mod aggregates;
pub mod export;
pub mod progress;
pub mod rollup;
