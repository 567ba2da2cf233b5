//! TUN devices and the batched underlay UDP socket (issue 4 fills this in).
