//! Autoflow host: serves HTTP routes from sandboxed wasm feature plugins and lends them the
//! host's capabilities through the `autoflow:platform` WIT contract.
//!
//! Start at [`startup::Application`]; requests flow through [`http`] into [`runtime`], which runs
//! the plugins [`plugins`] loaded.

pub mod admin_client;
pub mod capabilities;
pub mod cli;
pub mod config;
pub mod contract;
pub mod db;
pub mod http;
pub mod plugins;
pub mod private_fs;
pub mod runtime;
pub mod services;
pub mod startup;
pub mod tasks;
pub mod telemetry;
pub mod user_commands;

/// Plugin declarations as plain data, shared with the build tool.
pub use autoflow_spec as spec;
