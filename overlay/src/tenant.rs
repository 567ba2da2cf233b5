//! The tenant (virtual network) id, one type for the data plane's VRFs and
//! BGP's route-target policy alike.

use std::fmt;

/// A tenant (virtual network), named by its configured numeric id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TenantId(pub u32);

impl fmt::Display for TenantId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// Compares with the id as the configuration numbers tenants.
impl PartialEq<u32> for TenantId {
    fn eq(&self, other: &u32) -> bool {
        self.0 == *other
    }
}
