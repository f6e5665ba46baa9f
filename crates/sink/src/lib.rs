//! openclick-sink (placeholder until built).
