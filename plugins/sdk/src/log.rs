//! Structured logs into the host's tracing, under the plugin's and request's span.

use crate::bindings::autoflow::platform::log::{self as wit, Level};

/// Logs a message with key/value fields at the given level.
pub fn event(level: Level, message: &str, fields: &[(&str, &str)]) {
    let fields: Vec<(String, String)> = fields.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
    wit::log(level, message, &fields);
}

pub fn debug(message: &str) {
    event(Level::Debug, message, &[]);
}

pub fn info(message: &str) {
    event(Level::Info, message, &[]);
}

pub fn warn(message: &str) {
    event(Level::Warn, message, &[]);
}

pub fn error(message: &str) {
    event(Level::Error, message, &[]);
}

pub use wit::Level as LogLevel;
