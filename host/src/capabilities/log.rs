//! `autoflow:platform/log`: plugin log events into `tracing`, under the span of the request the
//! instance serves (it names the plugin and the request id).
//!
//! A plugin's key/value fields become one `fields` value holding a JSON object, so log pipelines
//! can parse them and a plugin cannot overwrite the host's own fields (`plugin`, `request_id`):
//! tracing needs every field name at compile time, and plugins choose theirs at run time.

use serde_json::{Map, Value};

use wasmtime::component::{HasData, Linker};

use super::Instance;
use crate::contract::wit::log as wit;

/// Most bytes of one message; longer ones are cut.
const MAX_MESSAGE: usize = 8 * 1024;
/// Most fields kept per event; later ones are dropped.
const MAX_FIELDS: usize = 32;
/// Most bytes of one field name or value; longer ones are cut.
const MAX_FIELD: usize = 1024;

/// Where a plugin's log events go: the current tracing span (every plugin may log).
struct PluginLog;

impl HasData for PluginLog {
    type Data<'a> = PluginLog;
}

/// Adds `log`'s function to `linker`.
pub(super) fn add_to_linker(linker: &mut Linker<Instance>) -> wasmtime::Result<()> {
    wit::add_to_linker::<_, PluginLog>(linker, |_| PluginLog)
}

impl wit::Host for PluginLog {
    fn log(&mut self, level: wit::Level, message: String, fields: Vec<(String, String)>) {
        let message = truncate(&message, MAX_MESSAGE);
        // The fields are built only if the event is enabled: tracing evaluates them after its check.
        macro_rules! emit {
            ($level:expr) => {
                tracing::event!(target: "autoflow::plugin", $level, fields = %fields_object(&fields), "{message}")
            };
        }
        match level {
            wit::Level::Trace => emit!(tracing::Level::TRACE),
            wit::Level::Debug => emit!(tracing::Level::DEBUG),
            wit::Level::Info => emit!(tracing::Level::INFO),
            wit::Level::Warn => emit!(tracing::Level::WARN),
            wit::Level::Error => emit!(tracing::Level::ERROR),
        }
    }
}

/// The fields as one JSON object (a repeated name keeps its last value), within the limits.
fn fields_object(fields: &[(String, String)]) -> Value {
    let object: Map<String, Value> = fields
        .iter()
        .take(MAX_FIELDS)
        .map(|(name, value)| (truncate(name, MAX_FIELD).to_owned(), Value::from(truncate(value, MAX_FIELD))))
        .collect();
    Value::Object(object)
}

fn truncate(text: &str, max: usize) -> &str {
    if text.len() <= max {
        return text;
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_become_a_bounded_json_object() {
        let fields = vec![("user".into(), "a \"quoted\" name".into()), ("n".into(), "1".into())];
        assert_eq!(fields_object(&fields), serde_json::json!({ "user": "a \"quoted\" name", "n": "1" }));
        let many: Vec<(String, String)> = (0..50).map(|i| (format!("k{i}"), "é".repeat(1000))).collect();
        let object = fields_object(&many);
        let object = object.as_object().unwrap();
        assert_eq!(object.len(), MAX_FIELDS);
        assert!(object.values().all(|v| v.as_str().unwrap().len() <= MAX_FIELD));
    }
}
