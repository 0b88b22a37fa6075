//! Configuration, resolved once before the first request: the builder's
//! settings grouped by concern, their validation, discovery and the first
//! key set fetch. Imported by nobody but the crate root: everything else is
//! built from what [`TokenGateBuilder::build`] hands it.

mod builder;

pub use builder::{BuildError, TokenGateBuilder};
