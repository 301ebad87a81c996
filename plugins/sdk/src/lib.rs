//! Write Autoflow feature plugins in plain Rust.
//!
//! A plugin declares its routes in `plugin.toml`, builds a [`Router`] mapping each of them to a
//! handler function, and exports it with [`feature!`]. Handlers take a [`Request`] and return
//! [`Result<Response>`]; an [`Error`] becomes the platform's JSON error response.
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
pub mod records;
mod request;
mod response;
mod router;

pub use error::{Error, FieldError, Result, Validation};
pub use request::{Principal, Request};
pub use response::Response;
pub use router::{Handler, Router};

/// Bindings generated from the `autoflow:platform` WIT contract. Plugin code rarely needs them directly.
#[doc(hidden)]
pub mod bindings {
    wit_bindgen::generate!({
        path: "../../wit",
        world: "autoflow:platform/feature",
        pub_export_macro: true,
        export_macro_name: "__export_feature",
        default_bindings_module: "autoflow_sdk::bindings",
    });
}

/// Exports a feature plugin whose routes are served by the given [`Router`] expression.
///
/// The expression is evaluated once per instance; the host creates a fresh instance per request.
#[macro_export]
macro_rules! feature {
    ($router:expr) => {
        struct __AutoflowFeature;

        impl $crate::bindings::exports::autoflow::platform::handler::Guest for __AutoflowFeature {
            fn handle(
                request: $crate::bindings::exports::autoflow::platform::handler::Request,
            ) -> ::core::result::Result<
                $crate::bindings::exports::autoflow::platform::handler::Response,
                $crate::bindings::autoflow::platform::types::Error,
            > {
                let router: $crate::Router = $router;
                router.dispatch(request)
            }
        }

        $crate::bindings::__export_feature!(__AutoflowFeature with_types_in $crate::bindings);
    };
}
