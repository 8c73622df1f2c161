//! The active controller's ACL decisions, as pure functions of the image (Kafka's AclControlManager): the
//! records that create bindings (an existing binding is not added again) and those that delete the
//! bindings filters select.

use std::collections::BTreeSet;

use uuid::Uuid;

use super::image::Image;
use super::records::MetadataRecord;
use crate::authorizer::{AclBinding, AclFilter};

/// The records adding those of `bindings` that are new (each once), with ids from `new_id`.
pub fn create(image: &Image, bindings: &[AclBinding], mut new_id: impl FnMut() -> Uuid) -> Vec<MetadataRecord> {
    let mut seen = BTreeSet::new();
    bindings
        .iter()
        .filter(|b| image.acls.find(b).is_none() && seen.insert(*b))
        .map(|b| MetadataRecord::Acl { id: new_id(), binding: b.clone() })
        .collect()
}

/// The records removing every binding a filter selects, and each filter's bindings (a binding two filters
/// select is reported by the first).
pub fn delete(image: &Image, filters: &[AclFilter]) -> (Vec<MetadataRecord>, Vec<Vec<AclBinding>>) {
    let mut removed = BTreeSet::new();
    let mut records = Vec::new();
    let deleted = filters
        .iter()
        .map(|f| {
            image
                .acls
                .matching(f)
                .filter(|(id, _)| removed.insert(*id))
                .map(|(id, b)| {
                    records.push(MetadataRecord::RemoveAcl { id });
                    b.clone()
                })
                .collect()
        })
        .collect();
    (records, deleted)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::controller::records::MetadataBatch;

    fn binding(name: &str, principal: &str) -> AclBinding {
        AclBinding::from_wire(2, name, 3, principal, "*", 3, 3).unwrap()
    }

    #[test]
    fn created_once_deleted_by_filter() {
        let mut image = Image::default();
        let mut next = 0u128;
        let mut id = || {
            next += 1;
            Uuid::from_u128(next)
        };
        let (a, b) = (binding("a", "User:x"), binding("b", "User:y"));
        let records = create(&image, &[a.clone(), a.clone(), b.clone()], &mut id);
        assert_eq!(records.len(), 2, "a duplicate in the request is added once");
        image.apply(1, &MetadataBatch::new(records)).unwrap();
        assert!(create(&image, &[a.clone(), b.clone()], &mut id).is_empty(), "existing bindings are not added again");
        assert_eq!(image.acls.len(), 2);

        let by_principal = |p: &str| AclFilter::from_wire(1, None, 1, Some(p), None, 1, 1).unwrap();
        let everything = AclFilter::from_wire(1, None, 1, None, None, 1, 1).unwrap();
        let (records, deleted) = delete(&image, &[by_principal("User:y"), everything.clone(), by_principal("User:z")]);
        assert_eq!(deleted, vec![vec![b], vec![a], vec![]]);
        assert_eq!(records.len(), 2);
        image.apply(2, &MetadataBatch::new(records)).unwrap();
        assert!(image.acls.is_empty());
        assert_eq!(delete(&image, &[everything]), (vec![], vec![vec![]]));
    }
}
