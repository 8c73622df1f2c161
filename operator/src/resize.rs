//! Storage growth: whether the brokers' data claims can follow an edited `storage.size`.
//!
//! A StatefulSet's volumeClaimTemplates cannot be changed, so the operator keeps the template
//! as it was created and resizes the existing claims directly (new brokers start at the
//! template's size and are grown on the next pass). The alternative, deleting the StatefulSet
//! with orphan propagation and recreating it, leaves a window in which no controller owns the
//! pods; patching claims needs no such window. Claims never shrink. Whatever this finds is
//! reported in its own status condition and never stops the rest of the reconciliation.

use std::collections::BTreeMap;

use crate::quantity;

/// What the operator observed of one data claim.
#[derive(Clone, Debug, PartialEq)]
pub struct Claim {
    pub name: String,
    /// `spec.resources.requests.storage`.
    pub requested: Option<String>,
    /// `status.capacity.storage`: what is provisioned now.
    pub capacity: Option<String>,
    pub bound: bool,
    pub storage_class: Option<String>,
}

/// Whether a StorageClass allows expansion, as far as the operator could tell.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Expansion {
    Allowed,
    NotAllowed,
    /// The class could not be read (missing, or no permission); the reason says which.
    Unknown(String),
}

/// Claims to patch to the new size, and how the claims stand.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Plan {
    pub grow: Vec<String>,
    /// Claims that cannot reach the size; each message says why. A user must act.
    pub refused: Vec<(Reason, String)>,
    /// Claims that will reach the size without the user: waiting to bind or to be expanded.
    pub waiting: Vec<(Reason, String)>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Reason {
    ShrinkNotSupported,
    ExpansionNotAllowed,
    StorageClassUnknown,
    InvalidSize,
    /// The apiserver refused the claim's patch.
    ResizeFailed,
    WaitingForBinding,
    Resizing,
}

impl Reason {
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::ShrinkNotSupported => "ShrinkNotSupported",
            Reason::ExpansionNotAllowed => "ExpansionNotAllowed",
            Reason::StorageClassUnknown => "StorageClassUnknown",
            Reason::InvalidSize => "InvalidSize",
            Reason::ResizeFailed => "ResizeFailed",
            Reason::WaitingForBinding => "WaitingForBinding",
            Reason::Resizing => "Resizing",
        }
    }
}

/// Decides for each claim; `classes` holds what was learnt of each StorageClass named by a claim.
pub fn plan(desired: &str, claims: &[Claim], classes: &BTreeMap<String, Expansion>) -> Plan {
    let mut plan = Plan::default();
    let Some(want) = quantity::bytes(desired) else {
        plan.refused.push((Reason::InvalidSize, format!("storage.size {desired:?} is not a quantity")));
        return plan;
    };
    for c in claims {
        let name = &c.name;
        let requested = c.requested.as_deref().unwrap_or_default();
        let Some(has) = quantity::bytes(requested) else {
            plan.refused.push((Reason::InvalidSize, format!("{name} requests {requested:?}, not a quantity")));
            continue;
        };
        if want < has {
            plan.refused.push((
                Reason::ShrinkNotSupported,
                format!(
                    "{name} has {requested}; volumes cannot shrink to {desired} (set storage.size back to {requested} or more)"
                ),
            ));
            continue;
        }
        if want == has {
            let provisioned = c.capacity.as_deref().and_then(quantity::bytes);
            if provisioned.is_some_and(|p| p < want) {
                let now = c.capacity.as_deref().unwrap_or_default();
                plan.waiting.push((Reason::Resizing, format!("{name} is being expanded from {now} to {requested}")));
            }
            continue;
        }
        let expansion = match &c.storage_class {
            None => Expansion::Unknown("it has no StorageClass".to_string()),
            Some(class) => classes
                .get(class)
                .cloned()
                .unwrap_or_else(|| Expansion::Unknown(format!("StorageClass {class} was not looked up"))),
        };
        match expansion {
            Expansion::NotAllowed => plan.refused.push((
                Reason::ExpansionNotAllowed,
                format!(
                    "{name} cannot grow to {desired}: StorageClass {} does not set allowVolumeExpansion",
                    c.storage_class.as_deref().unwrap_or_default()
                ),
            )),
            Expansion::Unknown(why) => {
                plan.refused.push((Reason::StorageClassUnknown, format!("{name} cannot grow to {desired}: {why}")))
            }
            Expansion::Allowed if !c.bound => {
                plan.waiting.push((Reason::WaitingForBinding, format!("{name} grows to {desired} once it is bound to a volume")))
            }
            Expansion::Allowed => plan.grow.push(name.clone()),
        }
    }
    plan
}

/// The `StorageResized` condition: status, reason and message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Report {
    pub resized: bool,
    pub reason: String,
    pub message: String,
}

/// Summarises a plan after the `grow` claims were patched; `failed` lists patches the
/// apiserver refused. Problems that need the user come first.
pub fn report(desired: &str, plan: &Plan, failed: &[String]) -> Report {
    let mut problems: Vec<(Reason, String)> = plan.refused.clone();
    problems.extend(failed.iter().map(|f| (Reason::ResizeFailed, f.clone())));
    problems.sort_by_key(|(r, _)| *r);
    let pending: Vec<String> = plan.grow.iter().map(|c| format!("{c} is being expanded to {desired}")).collect();
    match problems.first() {
        Some((reason, _)) => Report {
            resized: false,
            reason: reason.as_str().to_string(),
            message: problems.iter().map(|(_, m)| m.as_str()).collect::<Vec<_>>().join("; "),
        },
        None if !plan.waiting.is_empty() || !pending.is_empty() => {
            let mut waiting = plan.waiting.clone();
            waiting.sort_by_key(|(r, _)| *r);
            let reason = waiting.first().map_or(Reason::Resizing, |(r, _)| *r);
            let messages: Vec<String> = waiting.into_iter().map(|(_, m)| m).chain(pending).collect();
            Report { resized: false, reason: reason.as_str().to_string(), message: messages.join("; ") }
        }
        None => Report {
            resized: true,
            reason: "AtRequestedSize".to_string(),
            message: format!("every data claim requests {desired}"),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claim(name: &str, requested: &str, bound: bool, class: Option<&str>) -> Claim {
        Claim {
            name: name.into(),
            requested: Some(requested.into()),
            capacity: bound.then(|| requested.into()),
            bound,
            storage_class: class.map(String::from),
        }
    }

    fn classes() -> BTreeMap<String, Expansion> {
        BTreeMap::from([
            ("grows".to_string(), Expansion::Allowed),
            ("fixed".to_string(), Expansion::NotAllowed),
            ("hidden".to_string(), Expansion::Unknown("cannot read StorageClass hidden: forbidden".into())),
        ])
    }

    #[test]
    fn each_claim_is_decided() {
        // (desired, claim) -> (grow?, reason of a refusal or wait)
        let table = [
            ("2Gi", claim("c", "1Gi", true, Some("grows")), true, None),
            ("1Gi", claim("c", "1Gi", true, Some("fixed")), false, None),
            ("1024Mi", claim("c", "1Gi", true, Some("fixed")), false, None),
            ("2Gi", claim("c", "1Gi", true, Some("fixed")), false, Some(Reason::ExpansionNotAllowed)),
            ("2Gi", claim("c", "1Gi", true, Some("hidden")), false, Some(Reason::StorageClassUnknown)),
            ("2Gi", claim("c", "1Gi", true, Some("gone")), false, Some(Reason::StorageClassUnknown)),
            ("2Gi", claim("c", "1Gi", true, None), false, Some(Reason::StorageClassUnknown)),
            ("2Gi", claim("c", "1Gi", false, Some("grows")), false, Some(Reason::WaitingForBinding)),
            ("1Gi", claim("c", "2Gi", true, Some("grows")), false, Some(Reason::ShrinkNotSupported)),
            ("1G", claim("c", "1Gi", true, Some("grows")), false, Some(Reason::ShrinkNotSupported)),
            ("2Gi", claim("c", "lots", true, Some("grows")), false, Some(Reason::InvalidSize)),
            ("big", claim("c", "1Gi", true, Some("grows")), false, Some(Reason::InvalidSize)),
        ];
        for (desired, c, want_grow, want_reason) in table {
            let p = plan(desired, std::slice::from_ref(&c), &classes());
            let reason = p.refused.first().or(p.waiting.first()).map(|(r, _)| *r);
            assert_eq!((!p.grow.is_empty(), reason), (want_grow, want_reason), "{desired} {c:?}");
        }
    }

    #[test]
    fn an_expansion_in_flight_is_reported_until_provisioned() {
        let mut c = claim("data-logs-0", "2Gi", true, Some("grows"));
        c.capacity = Some("1Gi".into());
        let p = plan("2Gi", &[c], &classes());
        assert!(p.grow.is_empty(), "already requested");
        let r = report("2Gi", &p, &[]);
        assert_eq!((r.resized, r.reason.as_str()), (false, "Resizing"));
        assert_eq!(r.message, "data-logs-0 is being expanded from 1Gi to 2Gi");
    }

    #[test]
    fn the_report_puts_what_needs_the_user_first() {
        let claims = [
            claim("data-logs-0", "1Gi", true, Some("grows")),
            claim("data-logs-1", "1Gi", false, Some("grows")),
            claim("data-logs-2", "1Gi", true, Some("fixed")),
        ];
        let p = plan("2Gi", &claims, &classes());
        assert_eq!(p.grow, ["data-logs-0"]);
        let r = report("2Gi", &p, &[]);
        assert_eq!((r.resized, r.reason.as_str()), (false, "ExpansionNotAllowed"));
        assert_eq!(r.message, "data-logs-2 cannot grow to 2Gi: StorageClass fixed does not set allowVolumeExpansion");

        let p = plan("2Gi", &claims[..2], &classes());
        let r = report("2Gi", &p, &[]);
        assert_eq!((r.resized, r.reason.as_str()), (false, "WaitingForBinding"));
        assert_eq!(r.message, "data-logs-1 grows to 2Gi once it is bound to a volume; data-logs-0 is being expanded to 2Gi");

        let r = report("2Gi", &p, &["data-logs-0: forbidden".to_string()]);
        assert_eq!((r.resized, r.reason.as_str(), r.message.as_str()), (false, "ResizeFailed", "data-logs-0: forbidden"));

        let r = report("1Gi", &plan("1Gi", &claims, &classes()), &[]);
        assert_eq!((r.resized, r.reason.as_str()), (true, "AtRequestedSize"));
        let r = report("1Gi", &plan("1Gi", &[], &classes()), &[]);
        assert!(r.resized, "no claims yet: nothing to resize");
    }
}
