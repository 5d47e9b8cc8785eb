//! Placeholder until the sidecar benchmarks land (created by the lead to unblock the workspace build).
fn main() {}
