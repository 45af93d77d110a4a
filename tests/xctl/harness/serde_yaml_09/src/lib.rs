//! serde_yaml 0.8 under the version xctl asks for: ark-core only calls
//! `from_str` and formats its errors, which 0.8 does the same way.
pub use serde_yaml_08::*;
