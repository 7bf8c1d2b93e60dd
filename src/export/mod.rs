//! Pure projections of the served flags into another flag server's model: `unleash.rs` (the
//! client features document Unleash's server SDKs poll and accept as a bootstrap file).

pub mod unleash;
