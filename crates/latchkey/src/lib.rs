//! Latchkey: a self-hostable "Login with …" service. See ARCHITECTURE.md for the map.

pub mod app;
pub mod cli;
pub mod config;
pub mod flows;
pub mod keys;
pub mod limits;
pub mod mail;
pub mod metrics;
pub mod password;
pub mod seal;
pub mod store;
pub mod throttle;
pub mod web;
