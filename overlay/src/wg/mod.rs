//! WireGuard peers on boringtun (issue 4 fills this in).
