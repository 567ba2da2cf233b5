//! MPLS labels of the VRFs: one per tenant, stable for the life of the node.
//!
//! A receiver maps the label to the VRF (DESIGN.md, "labels are per VRF"), and
//! the label is in every route this node advertised. If it changed on restart,
//! peers would send traffic with the old label until BGP converged again, so
//! allocations are persisted with the rest of the state and never reused while
//! the tenant exists. Labels 0-15 are reserved (RFC 3032 §2.1) and never handed
//! out: [`Label::for_vrf`] enforces that.

use pisek_overlay::packet::Label;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use thiserror::Error;

/// Every label of the 20-bit space is taken.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Error)]
#[error("no MPLS label left for tenant {tenant_id} (all {} VRF labels are allocated)", Label::MAX - Label::FIRST_UNRESERVED + 1)]
pub struct LabelsExhausted {
    /// The tenant that wanted one.
    pub tenant_id: u32,
}

/// Label per tenant id.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct LabelAllocations {
    /// Tenant id -> label value.
    by_tenant: BTreeMap<u32, u32>,
}

impl LabelAllocations {
    /// The label of a tenant, if it has one.
    pub fn get(&self, tenant_id: u32) -> Option<Label> {
        self.by_tenant
            .get(&tenant_id)
            .and_then(|v| Label::for_vrf(*v).ok())
    }

    /// The tenant's label, allocating the lowest free one on first use.
    pub fn label_for(&mut self, tenant_id: u32) -> Result<Label, LabelsExhausted> {
        if let Some(label) = self.get(tenant_id) {
            return Ok(label);
        }
        let used: std::collections::BTreeSet<u32> = self.by_tenant.values().copied().collect();
        let label = (Label::FIRST_UNRESERVED..=Label::MAX)
            .find(|v| !used.contains(v))
            .and_then(|v| Label::for_vrf(v).ok())
            .ok_or(LabelsExhausted { tenant_id })?;
        self.by_tenant.insert(tenant_id, label.value());
        Ok(label)
    }

    /// Frees the label of a tenant that was removed from the node.
    pub fn release(&mut self, tenant_id: u32) -> Option<Label> {
        self.by_tenant
            .remove(&tenant_id)
            .and_then(|v| Label::for_vrf(v).ok())
    }

    /// All allocations, by tenant id.
    pub fn iter(&self) -> impl Iterator<Item = (u32, Label)> + '_ {
        self.by_tenant
            .iter()
            .filter_map(|(t, v)| Label::for_vrf(*v).ok().map(|l| (*t, l)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_label_is_the_first_unreserved() {
        let mut labels = LabelAllocations::default();
        assert_eq!(labels.label_for(7).map(Label::value), Ok(16));
        assert_eq!(labels.label_for(3).map(Label::value), Ok(17));
    }

    #[test]
    fn label_is_stable_for_a_tenant() {
        let mut labels = LabelAllocations::default();
        let first = labels.label_for(1);
        labels.label_for(2).expect("label");
        assert_eq!(labels.label_for(1), first);
    }

    #[test]
    fn released_label_is_reused_only_after_release() {
        let mut labels = LabelAllocations::default();
        labels.label_for(1).expect("label");
        labels.label_for(2).expect("label");
        assert_eq!(labels.release(1).map(Label::value), Some(16));
        assert_eq!(labels.label_for(3).map(Label::value), Ok(16));
    }

    #[test]
    fn reserved_value_in_a_state_file_is_never_returned() {
        // A hand-edited or corrupted state file must not make label 3 a VRF label.
        let mut labels: LabelAllocations = serde_json::from_str(r#"{"1":3}"#).expect("parse");
        assert_eq!(labels.get(1), None);
        let label = labels.label_for(1).expect("label");
        assert!(!label.is_reserved());
    }
}
