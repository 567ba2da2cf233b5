//! `bgp_rib`: the speaker's RIB as the API answers it, filtered by VRF
//! and family, with tenant and peer names instead of numbers.

use crate::api::{RibRoute, codes};
use crate::config::Config;
use crate::control::BgpHandle;
use pisek_api::Response;
use pisek_overlay::bgp::packet::Family;
use pisek_overlay::bgp::speaker::RibPath;

/// Answers `bgp_rib` from `bgp` (none: this node runs no speaker).
pub(super) async fn bgp_rib(
    config: &Config,
    bgp: Option<&BgpHandle>,
    vrf: Option<&str>,
    family: Option<&str>,
) -> Response {
    let tenant = match vrf {
        Some(name) => match config.tenant(name) {
            Some(t) => Some(t.id),
            None => {
                return Response::failure(
                    codes::UNKNOWN_TENANT,
                    format!("unknown tenant `{name}`"),
                );
            }
        },
        None => None,
    };
    let family = match family {
        None => None,
        Some("vpnv4") => Some(Family::VPNV4),
        Some("vpnv6") => Some(Family::VPNV6),
        Some(other) => {
            return Response::failure(
                codes::INVALID_REQUEST,
                format!("family `{other}` is not vpnv4 or vpnv6"),
            );
        }
    };
    let Some(bgp) = bgp else {
        return Response::success(Vec::<RibRoute>::new());
    };
    let paths = match bgp.rib().await {
        Ok(p) => p,
        Err(e) => return Response::failure(codes::INTERNAL, format!("the BGP speaker: {e}")),
    };
    let rows: Vec<RibRoute> = paths
        .into_iter()
        .filter(|p| family.is_none_or(|f| p.prefix.family() == f))
        .filter(|p| tenant.is_none_or(|t| p.tenants.iter().any(|v| v.0 == t)))
        .map(|p| row(config, p))
        .collect();
    Response::success(rows)
}

fn row(config: &Config, p: RibPath) -> RibRoute {
    let peer = p.from.and_then(|a| {
        config
            .bgp
            .neighbors
            .iter()
            .find(|n| n.address == a)
            .and_then(|n| n.name.clone())
    });
    RibRoute {
        family: if p.prefix.family() == Family::VPNV4 {
            "vpnv4"
        } else {
            "vpnv6"
        }
        .to_string(),
        rd: p.prefix.rd.to_string(),
        prefix: p.prefix.prefix.to_string(),
        labels: vec![p.label.value()],
        route_targets: p.route_targets.iter().map(ToString::to_string).collect(),
        next_hop: p.next_hop,
        from: p
            .from
            .map_or_else(|| "local".to_string(), |a| a.to_string()),
        peer,
        best: p.best,
        stale: p.stale,
        age_secs: p.age.as_secs(),
        local_pref: p.local_pref,
        vrfs: p
            .tenants
            .iter()
            .filter_map(|t| config.tenants.iter().find(|c| c.id == t.0))
            .map(|c| c.name.clone())
            .collect(),
    }
}
