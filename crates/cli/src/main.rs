//! The `openclick` binary.
fn main() {}
