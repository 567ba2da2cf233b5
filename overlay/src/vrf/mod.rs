//! Per-tenant routing tables (issue 3 fills this in).
