//! The error of governance's config: a value [`GovernanceConfig::compile`]
//! (or [`Reconciler::connect`]) cannot use, and the key it sits under.
//!
//! Its own file so that `compile.rs` and `reconciler.rs` both take it from
//! here instead of from each other.
//!
//! [`GovernanceConfig::compile`]: super::GovernanceConfig::compile
//! [`Reconciler::connect`]: super::Reconciler::connect

/// A governance config value that cannot be used, and where it is (the
/// `[governance]` section, or the worker count it is compiled for). Unlike
/// [`crate::config::ConfigError`] it keeps the key apart from the message.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{key}: {message}")]
pub struct GovernanceConfigError {
    key: String,
    message: String,
}

impl GovernanceConfigError {
    pub(crate) fn new(key: impl Into<String>, message: impl Into<String>) -> Self {
        GovernanceConfigError { key: key.into(), message: message.into() }
    }

    /// Full key, e.g. `governance.rules[2].next_hop`.
    pub fn key(&self) -> &str {
        &self.key
    }

    pub fn message(&self) -> &str {
        &self.message
    }
}
