//! The BGP speaker driver: TCP sessions and timers (issue 5 fills this in).
