//! Who may do what to a bucket: the one decision every S3 operation goes through.
//!
//! Pure: the caller (the gateway's S3 layer) names the principal, the access the
//! operation needs and the bucket record; this module answers allow or deny and why.
//! A later bucket policy document slots in here as one more input of [`authorize`]
//! (explicit deny first, then allows), without touching a single S3 handler.

use crate::schema::{BucketRecord, GrantPermission};

/// The caller of an operation, as authenticated (signature already verified).
#[derive(Clone, Copy, Debug)]
pub struct Principal<'a> {
    pub access_key: &'a str,
    /// The owner the access key belongs to (its credential record).
    pub owner: &'a str,
}

/// What an operation needs on its bucket.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Access {
    /// Reading objects, their metadata, listings of objects, uploads and parts.
    Read,
    /// Creating, overwriting and deleting objects; every multipart operation that
    /// changes an upload.
    Write,
    /// What only the owner does: deleting the bucket, reading its ACL, changing its
    /// settings, and every operation this module does not know (deny by default).
    Own,
}

impl Access {
    pub fn as_str(self) -> &'static str {
        match self {
            Access::Read => "read",
            Access::Write => "write",
            Access::Own => "own",
        }
    }
}

/// Why an operation is allowed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Allowed {
    /// The caller owns the bucket.
    Owner,
    /// A grant to the caller's access key covers the access.
    Grant(GrantPermission),
}

/// The operation is refused. Carries nothing about the bucket: what is shown to the
/// caller must not reveal the owner or whether an object exists.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Denied;

/// Whether `principal` may have `access` to `bucket`.
pub fn authorize(
    principal: Principal<'_>,
    access: Access,
    bucket: &BucketRecord,
) -> Result<Allowed, Denied> {
    if principal.owner == bucket.owner {
        return Ok(Allowed::Owner);
    }
    let grant = bucket
        .grants
        .iter()
        .find(|grant| grant.access_key == principal.access_key)
        .ok_or(Denied)?;
    let covered = match (grant.permission, access) {
        (_, Access::Own) => false,
        (GrantPermission::Read, Access::Read) => true,
        (GrantPermission::Read, Access::Write) => false,
        (GrantPermission::ReadWrite, Access::Read | Access::Write) => true,
    };
    if covered {
        Ok(Allowed::Grant(grant.permission))
    } else {
        Err(Denied)
    }
}

/// `bucket` with `access_key`'s grant set to `permission` (`None` revokes). Returns
/// whether anything changed.
pub fn set_grant(
    bucket: &mut BucketRecord,
    access_key: &str,
    permission: Option<GrantPermission>,
) -> bool {
    let before = bucket.grants.clone();
    bucket.grants.retain(|grant| grant.access_key != access_key);
    if let Some(permission) = permission {
        bucket.grants.push(crate::schema::BucketGrant {
            access_key: access_key.to_string(),
            permission,
        });
        bucket
            .grants
            .sort_by(|a, b| a.access_key.cmp(&b.access_key));
    }
    bucket.grants != before
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::BucketGrant;
    use shardlet_core::RedundancyLevel;

    fn bucket(grants: Vec<BucketGrant>) -> BucketRecord {
        BucketRecord {
            name: "b".into(),
            owner: "alice".into(),
            default_redundancy: RedundancyLevel::Medium,
            created_unix_ms: 0,
            deleting: false,
            grants,
            tags: Vec::new(),
        }
    }

    fn grant(access_key: &str, permission: GrantPermission) -> BucketGrant {
        BucketGrant {
            access_key: access_key.into(),
            permission,
        }
    }

    const ALICE: Principal<'static> = Principal {
        access_key: "KALICE",
        owner: "alice",
    };
    const BOB: Principal<'static> = Principal {
        access_key: "KBOB",
        owner: "bob",
    };

    #[test]
    fn the_owner_may_do_everything_with_any_of_its_keys() {
        let bucket = bucket(vec![]);
        let second_key = Principal {
            access_key: "KALICE2",
            owner: "alice",
        };
        for access in [Access::Read, Access::Write, Access::Own] {
            assert_eq!(authorize(ALICE, access, &bucket), Ok(Allowed::Owner));
            assert_eq!(authorize(second_key, access, &bucket), Ok(Allowed::Owner));
        }
    }

    #[test]
    fn a_stranger_is_denied_everything() {
        let bucket = bucket(vec![grant("KCAROL", GrantPermission::ReadWrite)]);
        for access in [Access::Read, Access::Write, Access::Own] {
            assert_eq!(authorize(BOB, access, &bucket), Err(Denied));
        }
    }

    #[test]
    fn a_read_grant_allows_reads_only() {
        let bucket = bucket(vec![grant("KBOB", GrantPermission::Read)]);
        assert_eq!(
            authorize(BOB, Access::Read, &bucket),
            Ok(Allowed::Grant(GrantPermission::Read))
        );
        assert_eq!(authorize(BOB, Access::Write, &bucket), Err(Denied));
        assert_eq!(authorize(BOB, Access::Own, &bucket), Err(Denied));
    }

    #[test]
    fn a_read_write_grant_never_allows_owner_operations() {
        let bucket = bucket(vec![grant("KBOB", GrantPermission::ReadWrite)]);
        assert!(authorize(BOB, Access::Read, &bucket).is_ok());
        assert!(authorize(BOB, Access::Write, &bucket).is_ok());
        assert_eq!(authorize(BOB, Access::Own, &bucket), Err(Denied));
    }

    #[test]
    fn a_grant_is_to_one_key_not_to_its_owner() {
        let bucket = bucket(vec![grant("KBOB", GrantPermission::ReadWrite)]);
        let bobs_other_key = Principal {
            access_key: "KBOB2",
            owner: "bob",
        };
        assert_eq!(
            authorize(bobs_other_key, Access::Read, &bucket),
            Err(Denied)
        );
    }

    #[test]
    fn an_owner_named_like_a_granted_key_gains_nothing() {
        // Owners are compared by owner, grants by access key: an owner whose name is
        // the text of someone's granted key does not get that key's grant.
        let bucket = bucket(vec![grant("KBOB", GrantPermission::ReadWrite)]);
        let impostor = Principal {
            access_key: "KMALLORY",
            owner: "KBOB",
        };
        assert_eq!(authorize(impostor, Access::Read, &bucket), Err(Denied));
    }

    #[test]
    fn setting_a_grant_replaces_the_keys_previous_one_and_revoking_removes_it() {
        let mut record = bucket(vec![]);
        assert!(set_grant(&mut record, "KBOB", Some(GrantPermission::Read)));
        assert!(!set_grant(&mut record, "KBOB", Some(GrantPermission::Read)));
        assert!(set_grant(
            &mut record,
            "KBOB",
            Some(GrantPermission::ReadWrite)
        ));
        assert!(set_grant(
            &mut record,
            "KCAROL",
            Some(GrantPermission::Read)
        ));
        assert_eq!(
            record.grants,
            vec![
                grant("KBOB", GrantPermission::ReadWrite),
                grant("KCAROL", GrantPermission::Read)
            ]
        );
        assert!(set_grant(&mut record, "KBOB", None));
        assert!(!set_grant(&mut record, "KBOB", None));
        assert_eq!(record.grants, vec![grant("KCAROL", GrantPermission::Read)]);
    }
}
