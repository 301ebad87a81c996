//! The plugin's own settings: its manifest's `[config]` values, which the operator may override with
//! `AUTOFLOW_PLUGIN_<NAME>__<KEY>` environment variables.

use std::str::FromStr;

use crate::bindings::autoflow::platform::config as wit;
use crate::{Error, Result};

/// The value of setting `key`, or `None` if the manifest declares no such key.
pub fn get(key: &str) -> Option<String> {
    wit::get(key)
}

/// Setting `key` parsed as `T`; a missing or unparsable value is an internal error naming the key
/// (a deployment mistake, not the caller's).
pub fn parse<T: FromStr>(key: &str) -> Result<T> {
    let value = get(key).ok_or_else(|| Error::internal(format!("setting `{key}` is not declared in [config]")))?;
    value.parse().map_err(|_| Error::internal(format!("setting `{key}` = {value:?} cannot be parsed")))
}

/// Every setting, in key order.
pub fn all() -> Vec<(String, String)> {
    wit::get_all()
}
