//! Write Autoflow plugins in plain Rust.
//!
//! A feature plugin declares its routes in `plugin.toml`, builds a [`Router`] mapping each of them
//! to a handler function, and exports it with [`feature!`]. Handlers take a [`Request`] and return
//! [`Result<Response>`]; an [`Error`] becomes the platform's JSON error response. A task plugin
//! declares `[[tasks]]` and exports a [`Tasks`] table with [`task!`]; a feature may handle tasks of
//! its own too (`feature!(router, tasks)`). The host compares the routes, tasks and collections
//! registered here with the manifest when the plugin loads, and refuses a build where they differ.
//!
//! ```ignore
//! use autoflow_sdk::{Request, Response, Result, Router};
//!
//! fn hello(req: &Request) -> Result<Response> {
//!     Response::json(&serde_json::json!({ "message": format!("Hello, {}!", req.param("name")?) }))
//! }
//!
//! autoflow_sdk::feature!(Router::new().get("/api/hello/{name}", hello));
//! ```

pub mod cache;
pub mod config;
pub mod crypto;
mod error;
pub mod http;
pub mod identity;
pub mod log;
pub mod queue;
pub mod records;
mod request;
mod response;
mod router;
pub mod tasks;

pub use error::{Error, FieldError, Result, Validation};
pub use request::{Principal, Request};
pub use response::Response;
pub use router::{Handler, Router};
pub use tasks::{Task, TaskError, Tasks};

/// Bindings generated from the `autoflow:platform` WIT contract. Plugin code rarely needs them directly.
#[doc(hidden)]
pub mod bindings {
    wit_bindgen::generate!({
        path: "../../wit",
        world: "autoflow:platform/plugin",
        pub_export_macro: true,
        export_macro_name: "__export_plugin",
        default_bindings_module: "autoflow_sdk::bindings",
    });
}

/// Exports a feature plugin whose routes are served by the given [`Router`] expression and,
/// optionally, whose own tasks (declared under `[[tasks]]` in its manifest) are the given
/// [`Tasks`] expression: `feature!(router, tasks)`. Its tasks reach its records directly.
///
/// Each expression is evaluated once per instance; the host creates a fresh instance per call.
#[macro_export]
macro_rules! feature {
    ($router:expr) => {
        $crate::feature!($router, $crate::Tasks::new());
    };
    ($router:expr, $tasks:expr) => {
        $crate::__export!(
            |request| {
                let router: $crate::Router = $router;
                router.dispatch(request)
            },
            |name, payload| {
                let tasks: $crate::Tasks = $tasks;
                tasks.validate(name, payload)
            },
            |task| {
                let tasks: $crate::Tasks = $tasks;
                tasks.run(task)
            },
            || {
                let router: $crate::Router = $router;
                let tasks: $crate::Tasks = $tasks;
                router.describe_with(&tasks)
            }
        );
    };
}

/// Exports a task plugin whose tasks are the given [`Tasks`] expression: a plugin with no routes.
#[macro_export]
macro_rules! task {
    ($tasks:expr) => {
        $crate::feature!($crate::Router::new(), $tasks);
    };
}

#[doc(hidden)]
pub use bindings::exports::autoflow::platform::task_handler as __wit_task;

/// Exports the `plugin` world's interfaces: both handlers, of which the manifest's `kind` says which
/// the host calls, and the description the host compares with the manifest.
#[doc(hidden)]
#[macro_export]
macro_rules! __export {
    ($handle:expr, $validate:expr, $run:expr, $describe:expr) => {
        struct __AutoflowPlugin;

        impl $crate::bindings::exports::autoflow::platform::handler::Guest for __AutoflowPlugin {
            fn handle(
                request: $crate::bindings::exports::autoflow::platform::handler::Request,
            ) -> ::core::result::Result<
                $crate::bindings::exports::autoflow::platform::handler::Response,
                $crate::bindings::autoflow::platform::types::Error,
            > {
                let handle: fn(
                    $crate::bindings::exports::autoflow::platform::handler::Request,
                ) -> ::core::result::Result<
                    $crate::bindings::exports::autoflow::platform::handler::Response,
                    $crate::bindings::autoflow::platform::types::Error,
                > = $handle;
                handle(request)
            }
        }

        impl $crate::__wit_task::Guest for __AutoflowPlugin {
            fn validate(
                name: ::std::string::String,
                payload: ::std::string::String,
            ) -> ::core::result::Result<(), $crate::bindings::autoflow::platform::types::Error> {
                let validate: fn(
                    &str,
                    &str,
                ) -> ::core::result::Result<(), $crate::bindings::autoflow::platform::types::Error> = $validate;
                validate(&name, &payload)
            }

            fn run(
                task: $crate::__wit_task::Task,
            ) -> ::core::result::Result<::std::string::String, $crate::__wit_task::TaskError> {
                let run: fn(
                    $crate::__wit_task::Task,
                ) -> ::core::result::Result<::std::string::String, $crate::__wit_task::TaskError> = $run;
                run(task)
            }
        }

        impl $crate::bindings::exports::autoflow::platform::description::Guest for __AutoflowPlugin {
            fn describe() -> $crate::bindings::exports::autoflow::platform::description::Contents {
                let describe: fn() -> $crate::bindings::exports::autoflow::platform::description::Contents = $describe;
                describe()
            }
        }

        $crate::bindings::__export_plugin!(__AutoflowPlugin with_types_in $crate::bindings);
    };
}
