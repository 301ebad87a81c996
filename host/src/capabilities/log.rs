//! `autoflow:platform/log`: plugin log events into `tracing`, under the span of the request the
//! instance serves (it names the plugin and the request id).

use crate::runtime::{InstanceState, bindings_log as wit};

/// Most bytes of one message or of all its fields together; longer ones are cut.
const MAX_MESSAGE: usize = 8 * 1024;

impl wit::Host for InstanceState {
    fn log(&mut self, level: wit::Level, message: String, fields: Vec<(String, String)>) {
        let message = truncate(&message);
        let fields = fields.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(" ");
        let fields = truncate(&fields);
        macro_rules! emit {
            ($level:expr) => {
                tracing::event!(target: "autoflow::plugin", $level, fields = %fields, "{message}")
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

fn truncate(text: &str) -> &str {
    if text.len() <= MAX_MESSAGE {
        return text;
    }
    let mut end = MAX_MESSAGE;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}
