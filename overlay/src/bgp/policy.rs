//! Route-target import and export per VRF (RFC 4364 §4.3.1, §4.3.5): a VRF
//! exports its routes with its route targets and imports every route that
//! carries at least one of its import targets. Tenants are isolated unless
//! their targets say otherwise.

use std::collections::BTreeMap;

use super::packet::{PathAttributes, RouteDistinguisher, RouteTarget};

pub use crate::tenant::TenantId;

/// One VRF's BGP settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VrfConfig {
    /// The tenant.
    pub tenant: TenantId,
    /// Route distinguisher of the routes this node advertises in the VRF
    /// (type 1, router-id:tenant, by the design's convention).
    pub rd: RouteDistinguisher,
    /// Routes carrying any of these are imported.
    pub import: Vec<RouteTarget>,
    /// Routes advertised from this VRF carry these.
    pub export: Vec<RouteTarget>,
}

/// The VRFs and their targets.
#[derive(Debug, Default, Clone)]
pub struct Policy {
    vrfs: BTreeMap<TenantId, VrfConfig>,
}

impl Policy {
    /// Adds or replaces a VRF.
    pub fn set_vrf(&mut self, vrf: VrfConfig) {
        self.vrfs.insert(vrf.tenant, vrf);
    }

    /// Removes a VRF.
    pub fn remove_vrf(&mut self, tenant: TenantId) -> Option<VrfConfig> {
        self.vrfs.remove(&tenant)
    }

    /// A VRF's settings.
    pub fn vrf(&self, tenant: TenantId) -> Option<&VrfConfig> {
        self.vrfs.get(&tenant)
    }

    /// The tenants that import a route with these attributes.
    pub fn importers(&self, attrs: &PathAttributes) -> Vec<TenantId> {
        let targets: Vec<RouteTarget> = attrs
            .ext_communities
            .iter()
            .filter_map(|c| RouteTarget::from_ext_community(*c))
            .collect();
        if targets.is_empty() {
            return Vec::new();
        }
        self.vrfs
            .values()
            .filter(|v| v.import.iter().any(|rt| targets.contains(rt)))
            .map(|v| v.tenant)
            .collect()
    }

    /// The extended communities a VRF's advertised routes carry.
    pub fn export_communities(&self, tenant: TenantId) -> Vec<[u8; 8]> {
        self.vrfs
            .get(&tenant)
            .map(|v| v.export.iter().map(|rt| rt.0).collect())
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vrf(tenant: TenantId, import: &[&str]) -> VrfConfig {
        VrfConfig {
            tenant,
            rd: RouteDistinguisher::from_as2(65000, tenant.0),
            import: import.iter().map(|s| s.parse().unwrap()).collect(),
            export: Vec::new(),
        }
    }

    #[test]
    fn a_route_is_imported_only_where_a_target_matches() {
        let mut p = Policy::default();
        p.set_vrf(vrf(TenantId(1), &["65000:1"]));
        p.set_vrf(vrf(TenantId(2), &["65000:2", "65000:99"]));
        let rt = |s: &str| s.parse::<RouteTarget>().unwrap().0;
        let attrs = PathAttributes {
            ext_communities: vec![rt("65000:99")],
            ..Default::default()
        };
        assert_eq!(p.importers(&attrs), vec![2]);
        let none = PathAttributes::default();
        assert!(p.importers(&none).is_empty());
    }
}
