//! `bloblang` processor: the old name of `mapping`, kept so older configs run unchanged.

pub use super::mapping::Config;
