//! The incoming label table: which VRF a received MPLS label selects.
//!
//! Labels are per VRF (one label per tenant on each node), so the table is
//! a plain map label -> tenant. Reserved labels 0-15 are refused: they
//! have fixed meanings (RFC 3032 §2.1, RFC 7274) and never name a VRF.

use crate::packet::Label;
use crate::vrf::{TenantId, VrfError};
use std::collections::HashMap;

/// Label -> tenant, for decapsulated packets.
#[derive(Debug, Clone, Default)]
pub struct LabelTable {
    tenants: HashMap<Label, TenantId>,
}

impl LabelTable {
    /// An empty table.
    pub fn new() -> LabelTable {
        LabelTable::default()
    }

    /// Binds `label` to `tenant`. Binding the same pair again is a no-op;
    /// a reserved label or one bound to another tenant is an error.
    pub fn bind(&mut self, label: Label, tenant: TenantId) -> Result<(), VrfError> {
        if label.is_reserved() {
            return Err(VrfError::ReservedLabel(label));
        }
        match self.tenants.get(&label) {
            Some(owner) if *owner != tenant => Err(VrfError::LabelInUse {
                label,
                tenant: *owner,
            }),
            Some(_) => Ok(()),
            None => {
                self.tenants.insert(label, tenant);
                Ok(())
            }
        }
    }

    /// Removes a binding, returning the tenant it pointed to.
    pub fn unbind(&mut self, label: Label) -> Option<TenantId> {
        self.tenants.remove(&label)
    }

    /// The tenant a received label selects.
    #[inline]
    pub fn tenant(&self, label: Label) -> Option<TenantId> {
        self.tenants.get(&label).copied()
    }

    /// Number of bound labels.
    pub fn len(&self) -> usize {
        self.tenants.len()
    }

    /// True when no label is bound.
    pub fn is_empty(&self) -> bool {
        self.tenants.is_empty()
    }

    /// Every binding, in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = (Label, TenantId)> + '_ {
        self.tenants.iter().map(|(l, t)| (*l, *t))
    }
}
