//! The `autoflow:platform` contract as the host sees it: the `bindgen!` output of the WIT worlds,
//! the error and principal types that cross it, and the [`CallContext`] every plugin call carries.
//! Every other layer depends on this one; it depends on nothing of the host's.

mod bindings;
mod call;

/// The host-side bindings of each imported interface (`wit::cache`, `wit::records`, …).
pub use bindings::autoflow::platform as wit;
pub use bindings::autoflow::platform::types::{Error as PluginError, FieldError, InvalidInput, Principal};
pub use bindings::exports::autoflow::platform::handler::{Request, Response};
pub use bindings::task::TaskPre;
/// The host-side bindings of `progress`, which only the task world imports.
pub use bindings::task::autoflow::platform::progress as task_progress;
pub use bindings::task::exports::autoflow::platform::task_handler::{Task, TaskError};
pub use bindings::{Feature, FeaturePre};
pub use call::{Attempt, CallContext};

use crate::spec::description::Description;

/// Each plugin world exports `description`; the two bindings have one shape.
macro_rules! description_from {
    ($contents:ty) => {
        impl From<$contents> for Description {
            fn from(contents: $contents) -> Self {
                Description {
                    routes: contents.routes.into_iter().map(|route| (route.method, route.path)).collect(),
                    tasks: contents.tasks,
                    collections: contents.collections,
                }
            }
        }
    };
}
description_from!(bindings::exports::autoflow::platform::description::Contents);
description_from!(bindings::task::exports::autoflow::platform::description::Contents);

impl PluginError {
    /// An `invalid` error with `message` and no field details.
    pub fn invalid(message: impl Into<String>) -> Self {
        PluginError::Invalid(InvalidInput { message: message.into(), fields: Vec::new() })
    }

    /// An `invalid` error whose `message` is about one input `field`.
    pub fn invalid_field(field: &str, message: String) -> Self {
        PluginError::Invalid(InvalidInput {
            fields: vec![FieldError { field: field.to_owned(), message: message.clone() }],
            message,
        })
    }
}
