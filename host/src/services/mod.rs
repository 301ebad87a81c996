//! Host services: the Rust form of the original system's services, shared by the host's own
//! endpoints and, through the capabilities, by plugins.

pub mod cache;
pub mod crypto;
pub mod identity;
pub mod keys;
pub mod passwords;
pub mod records;
pub mod redis_connection;
pub mod revocations;
pub mod tokens;
