//! The controller's decision on AlterUserScramCredentials (KIP-554): the records of one user's credential
//! change. The asking broker checked the request's shape (names, mechanisms, iterations, duplicates); here
//! what depends on the image is decided.

use serde::{Deserialize, Serialize};

use super::image::{Image, Refused};
use super::records::MetadataRecord;
use crate::errors::code;

/// One credential change; `mechanism` is the SASL name (`SCRAM-SHA-256`, `SCRAM-SHA-512`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub enum ScramChange {
    Delete { user: String, mechanism: String },
    Upsert { user: String, mechanism: String, salt: Vec<u8>, stored_key: Vec<u8>, server_key: Vec<u8>, iterations: i32 },
}

pub fn decide(image: &Image, change: ScramChange) -> Result<Vec<MetadataRecord>, Refused> {
    Ok(vec![match change {
        ScramChange::Delete { user, mechanism } => {
            if !image.scram_credentials.get(&user).is_some_and(|c| c.contains_key(&mechanism)) {
                return Err(Refused::new(
                    code::RESOURCE_NOT_FOUND,
                    format!("attempt to delete a user credential that does not exist ({user}, {mechanism})"),
                ));
            }
            MetadataRecord::RemoveUserScramCredential { name: user, mechanism }
        }
        ScramChange::Upsert { user, mechanism, salt, stored_key, server_key, iterations } => {
            MetadataRecord::UserScramCredential { name: user, mechanism, salt, stored_key, server_key, iterations }
        }
    }])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deleting_needs_the_credential() {
        let mut image = Image::default();
        let upsert = ScramChange::Upsert {
            user: "u".into(),
            mechanism: "SCRAM-SHA-256".into(),
            salt: vec![1],
            stored_key: vec![2],
            server_key: vec![3],
            iterations: 4096,
        };
        let records = decide(&image, upsert).unwrap();
        image.apply(1, &super::super::records::MetadataBatch::new(records)).unwrap();
        let delete = |m: &str| ScramChange::Delete { user: "u".into(), mechanism: m.into() };
        assert_eq!(decide(&image, delete("SCRAM-SHA-512")).unwrap_err().code, code::RESOURCE_NOT_FOUND);
        assert_eq!(
            decide(&image, delete("SCRAM-SHA-256")).unwrap(),
            vec![MetadataRecord::RemoveUserScramCredential { name: "u".into(), mechanism: "SCRAM-SHA-256".into() }]
        );
    }
}
