//! S3 credentials given from outside (`shardlet admin key import`): what a valid one
//! looks like, and the idempotent compare-and-set that stores it.
//!
//! What survives a crash: each credential is one batch in meta-raft (condition: the key
//! absent, or still the version that was read), so a crash leaves every credential
//! either as it was or as imported, never half-written; re-running the import finishes
//! the rest and reports the done ones "unchanged".

use shardlet_model::schema::{encode, keys, CredentialRecord};
use shardlet_model::store::{Batch, BatchOutcome};

use super::bucket::Buckets;
use crate::object::catalog::CatalogError;

/// Access keys: AWS's rule (IAM `AccessKeyId`): 16 to 128 word characters, which every
/// S3 client accepts and which never contain the `/` that separates SigV4's scope.
pub const ACCESS_KEY_CHARACTERS_MIN: usize = 16;
pub const ACCESS_KEY_CHARACTERS_MAX: usize = 128;
/// Secrets: at least 32 visible ASCII characters (AWS's are 40; 32 random base-62
/// characters are ~190 bits), at most 128.
pub const SECRET_KEY_CHARACTERS_MIN: usize = 32;
pub const SECRET_KEY_CHARACTERS_MAX: usize = 128;
/// Owners: 1 to 64 characters of letters, digits, `.`, `_`, `-`, `@`, starting with a
/// letter or digit (the owner is shown in ListBuckets and ACLs).
pub const OWNER_CHARACTERS_MAX: usize = 64;

/// Compare-and-set attempts of one import before giving up with `Conflict`.
const IMPORT_ATTEMPTS_MAX: usize = 8;

/// Why an access key is not one this cluster stores.
pub fn check_access_key(access_key: &str) -> Result<(), String> {
    let length = access_key.chars().count();
    if !(ACCESS_KEY_CHARACTERS_MIN..=ACCESS_KEY_CHARACTERS_MAX).contains(&length) {
        return Err(format!(
            "an access key has {ACCESS_KEY_CHARACTERS_MIN} to {ACCESS_KEY_CHARACTERS_MAX} characters, this one {length}"
        ));
    }
    if !access_key
        .bytes()
        .all(|byte| byte.is_ascii_alphanumeric() || byte == b'_')
    {
        return Err("an access key has only letters, digits and _".into());
    }
    Ok(())
}

/// Why a secret key is not one this cluster stores (the secret itself is never shown).
pub fn check_secret_key(secret_key: &str) -> Result<(), String> {
    let length = secret_key.chars().count();
    if !(SECRET_KEY_CHARACTERS_MIN..=SECRET_KEY_CHARACTERS_MAX).contains(&length) {
        return Err(format!(
            "a secret key has {SECRET_KEY_CHARACTERS_MIN} to {SECRET_KEY_CHARACTERS_MAX} characters, this one {length}"
        ));
    }
    if !secret_key.bytes().all(|byte| byte.is_ascii_graphic()) {
        return Err(
            "a secret key has only visible ASCII characters (no spaces, no control or non-ASCII characters)"
                .into(),
        );
    }
    Ok(())
}

/// Why `owner` is not an owner name (`key create --owner` and `key import` both check).
pub fn check_owner(owner: &str) -> Result<(), String> {
    let allowed = |byte: u8| byte.is_ascii_alphanumeric() || b"._-@".contains(&byte);
    let starts_well = owner
        .bytes()
        .next()
        .is_some_and(|byte| byte.is_ascii_alphanumeric());
    if owner.len() > OWNER_CHARACTERS_MAX || !starts_well || !owner.bytes().all(allowed) {
        return Err(format!(
            "an owner is 1 to {OWNER_CHARACTERS_MAX} characters of letters, digits, '.', '_', '-', '@', starting with a letter or digit; got {:?}",
            owner.chars().take(OWNER_CHARACTERS_MAX + 1).collect::<String>()
        ));
    }
    Ok(())
}

/// What an import did with one credential.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Imported {
    Created,
    /// Present with the same secret and owner: nothing written.
    Unchanged,
    /// Present with a different secret or owner, replaced as asked.
    Replaced,
}

impl Imported {
    pub fn as_str(self) -> &'static str {
        match self {
            Imported::Created => "created",
            Imported::Unchanged => "unchanged",
            Imported::Replaced => "replaced",
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error(transparent)]
    Catalog(#[from] CatalogError),
    /// The access key exists with another secret or owner and replacing was not asked.
    #[error("access key {access_key} exists with a different {what}; refused (replace it with --replace)")]
    Differs {
        access_key: String,
        what: &'static str,
    },
}

impl Buckets {
    /// Stores `record` (already checked with the `check_*` functions) unless an equal
    /// credential is there; an existing access key with another secret or owner is
    /// refused unless `replace`. A compare-and-set on the credential's key: of two
    /// concurrent imports of one new key, one creates it and the other finds it
    /// (unchanged, or refused/replaced when they differ).
    pub async fn import_credential(
        &self,
        record: &CredentialRecord,
        replace: bool,
    ) -> Result<Imported, ImportError> {
        let key = keys::credential(&record.access_key);
        for _ in 0..IMPORT_ATTEMPTS_MAX {
            let existing = self.catalog().read::<CredentialRecord>(&key).await?;
            let mut batch = Batch::default();
            let done = match &existing {
                None => {
                    batch.require_absent(key.clone());
                    Imported::Created
                }
                Some(stored) => {
                    let what = match (
                        stored.record.secret_key == record.secret_key,
                        stored.record.owner == record.owner,
                    ) {
                        (true, true) => return Ok(Imported::Unchanged),
                        (false, true) => "secret",
                        (true, false) => "owner",
                        (false, false) => "secret and owner",
                    };
                    if !replace {
                        return Err(ImportError::Differs {
                            access_key: record.access_key.clone(),
                            what,
                        });
                    }
                    batch.require_version(key.clone(), stored.version);
                    Imported::Replaced
                }
            };
            batch.put(key.clone(), encode(record));
            match self.catalog().apply(batch).await? {
                BatchOutcome::Applied { .. } => return Ok(done),
                // Someone else changed the key between the read and the batch: read again.
                BatchOutcome::ConditionFailed { .. } => continue,
            }
        }
        Err(CatalogError::Conflict(format!("access key {}", record.access_key)).into())
    }
}

impl Buckets {
    /// One page of access keys in key order after `start_after` (an access key), at
    /// most `limit`, and whether more follow. The records carry secrets: callers print
    /// only the access key, owner and creation time.
    pub async fn credentials(
        &self,
        start_after: Option<&str>,
        limit: usize,
    ) -> Result<(Vec<CredentialRecord>, bool), CatalogError> {
        let after = start_after.map(keys::credential);
        let (page, next) = self
            .catalog()
            .scan::<CredentialRecord>(keys::CREDENTIAL_PREFIX.as_bytes(), after.as_deref(), limit)
            .await?;
        let records = page.into_iter().map(|(_, stored)| stored.record).collect();
        Ok((records, next.is_some()))
    }
}
