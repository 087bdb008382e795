//! The ZoHo Desk simulator (being written).
