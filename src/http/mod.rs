//! HTTP servers: the admin server and (later) the webhook service URL. This module knows nothing of the
//! pipeline: the orchestrator hands it trait objects to ask for readiness and status.

pub mod admin;
pub mod webhook;
