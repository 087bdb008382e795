//! The ZoHo Desk simulator binary (being written).
fn main() {}
