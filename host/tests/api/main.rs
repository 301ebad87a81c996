//! Black-box tests of the host: real servers on random ports, real built plugin components, a
//! fresh database per test (PostgreSQL when `DATABASE_URL` is set, else SQLite).

mod helpers;

mod admin;
mod auth;
mod backends;
mod cache;
mod cli;
mod config;
mod database;
mod faults;
mod health;
mod internal_requests;
mod limits;
mod logs;
mod notes;
mod outbound;
mod plugin_cache;
mod plugin_crypto;
mod proxy;
mod records;
mod reload;
mod requests;
mod routing;
mod startup;
mod uploads;
mod users;
