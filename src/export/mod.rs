//! Pure projections of the served flags into another flag server's model: `unleash.rs` (the
//! client features document Unleash's server SDKs poll and accept as a bootstrap file) and
//! `flagd.rs` (a flagd flag definition file), both walking `steps`.

pub mod flagd;
mod steps;
pub mod unleash;
