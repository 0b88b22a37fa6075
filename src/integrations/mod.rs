//! Framework adapters over the same verifier and renderer: axum extractors
//! and tonic helpers, each behind its feature.

#[cfg(feature = "axum")]
pub mod axum;
#[cfg(feature = "mcp")]
pub mod mcp;
#[cfg(feature = "tonic")]
pub mod tonic;
