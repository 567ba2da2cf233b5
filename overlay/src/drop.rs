//! Drop reasons and counters (issue 3 fills this in).
