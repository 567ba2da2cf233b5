//! The Pisek gateway agent: composes the overlay library with TUN devices,
//! the underlay socket, netlink and the attach API.
