//! openclick-edge (placeholder until built).
