//! Everything that speaks ZoHo Desk: data centers, OAuth, the rate-limited client, the module catalog,
//! pagers, webhook payloads and JWT verification.

pub mod datacenter;
pub mod module;
