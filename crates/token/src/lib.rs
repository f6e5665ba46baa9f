//! openclick-token (placeholder until built).
