//! openclick-suppress (placeholder until built).
