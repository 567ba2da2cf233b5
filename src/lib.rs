//! Pisek's root package: it holds the runnable examples in `examples/`, the
//! cross-crate integration and interop tests in `tests/` and the benches in
//! `benches/` (a package needs a target, hence this empty library). The
//! platform lives in the workspace members `pisek-overlay`, `pisek-agent`
//! and `pisek-cni`; the test rig they share is `pisek-lab` (`lab/`).
