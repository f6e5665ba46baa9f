//! openclick-enrich (placeholder until built).
