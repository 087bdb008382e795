//! Everything that speaks ZoHo Desk: data centers, OAuth, the rate-limited client, the module catalog,
//! pagers, webhook payloads and JWT verification.

pub mod auth;
pub mod catalog;
pub mod client;
pub mod credentials;
pub mod datacenter;
pub mod error;
pub mod jwks;
pub mod module;
pub mod oauth;
pub mod pager;
pub mod quota;
pub mod registry;
pub mod subscription;
pub mod webhook;
