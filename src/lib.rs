//! Pisek's root package: it owns the runnable labs in `examples/` and the
//! cross-crate integration and interop tests in `tests/`. The platform itself
//! lives in the workspace members `pisek-overlay`, `pisek-agent` and
//! `pisek-cni`.

pub use pisek_overlay as overlay;

pub mod lab;
pub mod sensor_lab;
