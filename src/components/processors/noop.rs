//! `noop`: passes messages through unchanged (useful as a placeholder in configs).

use serde::Deserialize;

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {}
