//! Latchkey's one integration-test binary: the store contract on both engines, and end-to-end tests that talk
//! HTTP to a real server on a real socket with real clients.

mod account;
mod activity;
mod binary;
mod browser;
mod code_flow;
mod demo;
mod developer;
mod device;
mod errors;
mod hardening;
mod interaction;
mod keys_at_rest;
mod logo;
mod mail;
mod mailbox;
mod multinode;
mod oidc;
mod oidc_authlib;
mod page_faults;
mod proxy;
mod recovery;
mod reusable_refresh;
mod scopes;
mod sdk;
mod server;
mod smoke;
mod standard;
mod store;
mod support;
mod tidy;
mod verification;
