//! Synthetic Tachyon traffic: packets described by value, malformed packets
//! for every parser drop reason, and a seeded traffic model. Shared by
//! `tachyon-gen`, the integration tests and the benchmarks; every byte
//! position and constant comes from [`crate::wire`].

pub mod frame;
pub mod malformed;
pub mod mix;
pub mod model;
pub mod summary;
pub mod zipf;

#[cfg(test)]
mod reference_check;

pub use frame::FrameSpec;
pub use malformed::{PARSER_REASONS, is_parser_reason, malformed};
pub use mix::MalformedMix;
pub use model::{CountRange, FrameKind, Generated, Popularity, TrafficConfig, TrafficGenerator, fill_payload};
pub use summary::{Counts, Summary};
pub use zipf::Zipf;

/// A `tachyon-gen` traffic setting that cannot be honoured (a count range,
/// a malformed mix, a model value); the text says which and why. Not the
/// appliance's [`crate::config::ConfigError`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigError(pub String);

impl std::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ConfigError {}
