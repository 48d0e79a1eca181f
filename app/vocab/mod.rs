//! The shared vocabulary at the bottom of the layers: pure types and parsers every other
//! module may use, importing nothing of kubemeter's.

pub mod time;
