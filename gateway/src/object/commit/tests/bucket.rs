//! Bucket and credential commits.

use std::sync::Arc;

use async_trait::async_trait;
use shardlet_core::RedundancyLevel;
use shardlet_model::memory::InMemoryMetadata;
use shardlet_model::schema::{encode, keys, BucketRecord, GrantPermission};
use shardlet_model::store::{Batch, BatchOutcome, ScanPage, VersionedValue};
use shardlet_model::{MetadataError, MetadataStore};

use super::{fixture, Fixture};
use crate::object::catalog::CatalogError;

/// Creates bucket `name` of `owner` (must succeed).
async fn create(gateway: &Fixture, name: &str, owner: &str, level: RedundancyLevel) {
    gateway
        .commit
        .buckets()
        .create_bucket(name, owner, level)
        .await
        .unwrap();
}

#[tokio::test]
async fn a_bucket_is_created_once() {
    let gateway = fixture(Arc::new(InMemoryMetadata::default()));
    create(&gateway, "photos", "alice", RedundancyLevel::Medium).await;
    assert!(matches!(
        gateway
            .commit
            .buckets()
            .create_bucket("photos", "bob", RedundancyLevel::Medium)
            .await,
        Err(CatalogError::BucketExists(_))
    ));
    assert_eq!(gateway.catalog.bucket_names().await, ["photos"]);
}

#[tokio::test]
async fn only_an_empty_bucket_is_deleted_and_a_refused_delete_leaves_it_usable() {
    let gateway = fixture(Arc::new(InMemoryMetadata::default()));
    create(&gateway, "b", "alice", RedundancyLevel::Medium).await;
    let mut batch = Batch::default();
    batch.put(keys::object("b", "k"), vec![1, b'{', b'}']);
    gateway.catalog.apply(batch).await.unwrap();
    assert!(matches!(
        gateway.commit.buckets().delete_bucket("b").await,
        Err(CatalogError::BucketNotEmpty(_))
    ));
    assert!(gateway.catalog.existing_bucket("b").await.is_ok());
    let mut batch = Batch::default();
    batch.delete(keys::object("b", "k"));
    gateway.catalog.apply(batch).await.unwrap();
    gateway.commit.buckets().delete_bucket("b").await.unwrap();
    assert!(matches!(
        gateway.catalog.existing_bucket("b").await,
        Err(CatalogError::NoSuchBucket(_))
    ));
}

/// An in-memory store whose scans fail (the metadata service going away between the
/// steps of a DeleteBucket).
#[derive(Default)]
struct ScansFail {
    inner: InMemoryMetadata,
}

#[async_trait]
impl MetadataStore for ScansFail {
    async fn get(&self, key: &[u8]) -> Result<Option<VersionedValue>, MetadataError> {
        self.inner.get(key).await
    }
    async fn scan(
        &self,
        _prefix: &[u8],
        _start_after: Option<&[u8]>,
        _limit: usize,
    ) -> Result<ScanPage, MetadataError> {
        Err(MetadataError::Unavailable(
            "scan refused by the test".into(),
        ))
    }
    async fn batch(&self, batch: Batch) -> Result<BatchOutcome, MetadataError> {
        self.inner.batch(batch).await
    }
}

#[tokio::test]
async fn a_delete_bucket_whose_emptiness_check_fails_leaves_the_bucket_usable() {
    let store = Arc::new(ScansFail::default());
    let gateway = fixture(store.clone());
    create(&gateway, "b", "alice", RedundancyLevel::Medium).await;
    assert!(matches!(
        gateway.commit.buckets().delete_bucket("b").await,
        Err(CatalogError::Metadata(MetadataError::Unavailable(_)))
    ));
    // Not stuck `deleting` (invisible and impossible to re-create): as it was.
    let bucket = gateway.catalog.existing_bucket("b").await.unwrap();
    assert!(!bucket.record.deleting);
    assert_eq!(bucket.record.owner, "alice");
}

#[tokio::test]
async fn a_buckets_default_redundancy_is_set_and_kept_and_a_missing_bucket_is_named() {
    let gateway = fixture(Arc::new(InMemoryMetadata::default()));
    create(&gateway, "b", "alice", RedundancyLevel::Medium).await;
    let updated = gateway
        .commit
        .buckets()
        .set_bucket_redundancy("b", RedundancyLevel::High)
        .await
        .unwrap();
    assert_eq!(updated.default_redundancy, RedundancyLevel::High);
    let stored = gateway.catalog.existing_bucket("b").await.unwrap().record;
    assert_eq!(stored.default_redundancy, RedundancyLevel::High);
    assert_eq!(stored.owner, "alice");
    assert!(matches!(
        gateway
            .commit
            .buckets()
            .set_bucket_redundancy("missing", RedundancyLevel::Low)
            .await,
        Err(CatalogError::NoSuchBucket(_))
    ));
}

#[tokio::test]
async fn credentials_are_created_with_aws_shapes_and_found_again() {
    let gateway = fixture(Arc::new(InMemoryMetadata::default()));
    let created = gateway
        .commit
        .buckets()
        .create_credential("alice")
        .await
        .unwrap();
    assert_eq!(created.access_key.len(), 20);
    assert_eq!(created.secret_key.0.len(), 40);
    let found = gateway
        .catalog
        .credential(&created.access_key)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(found, created);
    assert!(gateway.catalog.credential("NOPE").await.unwrap().is_none());
}

#[tokio::test]
async fn an_imported_credential_is_idempotent_and_a_different_secret_is_refused() {
    let gateway = fixture(Arc::new(InMemoryMetadata::default()));
    let record = super::super::new_credential("alice");
    let buckets = gateway.commit.buckets();
    // Twice: the second is the idempotent case.
    for _ in 0..2 {
        buckets.ensure_credential(&record).await.unwrap();
    }
    let mut other = record.clone();
    other.secret_key = super::super::new_credential("alice").secret_key;
    assert!(matches!(
        gateway.commit.buckets().ensure_credential(&other).await,
        Err(CatalogError::Conflict(_))
    ));
}

#[tokio::test]
async fn a_bucket_record_keeps_its_owner_through_a_refused_delete() {
    let gateway = fixture(Arc::new(InMemoryMetadata::default()));
    let record = BucketRecord {
        name: "b".into(),
        owner: "carol".into(),
        default_redundancy: RedundancyLevel::Low,
        created_unix_ms: 7,
        deleting: false,
        grants: Vec::new(),
        tags: Vec::new(),
    };
    let mut batch = Batch::default();
    batch
        .put(keys::bucket("b"), encode(&record))
        .put(keys::uploads_of_bucket("b"), vec![1, b'{', b'}']);
    gateway.catalog.apply(batch).await.unwrap();
    assert!(matches!(
        gateway.commit.buckets().delete_bucket("b").await,
        Err(CatalogError::BucketNotEmpty(_))
    ));
    assert_eq!(
        gateway.catalog.existing_bucket("b").await.unwrap().record,
        record
    );
}

#[tokio::test]
async fn a_grant_needs_an_existing_key_and_bucket_and_revoking_takes_it_away() {
    let gateway = fixture(Arc::new(InMemoryMetadata::default()));
    create(&gateway, "shared", "alice", RedundancyLevel::Medium).await;
    let buckets = gateway.commit.buckets();
    assert!(matches!(
        buckets
            .set_grant("shared", "NOSUCHKEY", Some(GrantPermission::Read))
            .await,
        Err(CatalogError::NoSuchCredential(key)) if key == "NOSUCHKEY"
    ));
    let bob = buckets.create_credential("bob").await.unwrap();
    assert!(matches!(
        buckets
            .set_grant("nobucket", &bob.access_key, Some(GrantPermission::Read))
            .await,
        Err(CatalogError::NoSuchBucket(_))
    ));
    let granted = buckets
        .set_grant("shared", &bob.access_key, Some(GrantPermission::ReadWrite))
        .await
        .unwrap();
    assert_eq!(granted.grants.len(), 1);
    let stored = gateway.catalog.existing_bucket("shared").await.unwrap();
    assert_eq!(stored.record.grants, granted.grants);
    assert_eq!(stored.record.owner, "alice");
    // Granting the same again writes nothing (the version stays).
    buckets
        .set_grant("shared", &bob.access_key, Some(GrantPermission::ReadWrite))
        .await
        .unwrap();
    let again = gateway.catalog.existing_bucket("shared").await.unwrap();
    assert_eq!(again.version, stored.version);
    let revoked = buckets
        .set_grant("shared", &bob.access_key, None)
        .await
        .unwrap();
    assert!(revoked.grants.is_empty());
    // Revoking a key that no longer exists is allowed (cleaning up after a deleted key).
    buckets.set_grant("shared", "GONEKEY", None).await.unwrap();
}

#[tokio::test]
async fn a_grant_survives_a_redundancy_change_and_a_refused_delete() {
    let gateway = fixture(Arc::new(InMemoryMetadata::default()));
    create(&gateway, "shared", "alice", RedundancyLevel::Medium).await;
    let buckets = gateway.commit.buckets();
    let bob = buckets.create_credential("bob").await.unwrap();
    buckets
        .set_grant("shared", &bob.access_key, Some(GrantPermission::Read))
        .await
        .unwrap();
    buckets
        .set_bucket_redundancy("shared", RedundancyLevel::High)
        .await
        .unwrap();
    let mut batch = Batch::default();
    batch.put(keys::object("shared", "k"), vec![1, b'{', b'}']);
    gateway.catalog.apply(batch).await.unwrap();
    assert!(buckets.delete_bucket("shared").await.is_err());
    let bucket = gateway.catalog.existing_bucket("shared").await.unwrap();
    assert_eq!(bucket.record.default_redundancy, RedundancyLevel::High);
    assert_eq!(bucket.record.grants.len(), 1);
    assert_eq!(bucket.record.grants[0].access_key, bob.access_key);
}

mod import {
    use super::*;
    use crate::object::commit::{
        check_access_key, check_owner, check_secret_key, new_credential, ImportError, Imported,
    };

    #[tokio::test]
    async fn an_import_creates_then_leaves_unchanged_and_refuses_a_different_secret_or_owner() {
        let gateway = fixture(Arc::new(InMemoryMetadata::default()));
        let buckets = gateway.commit.buckets();
        let record = new_credential("alice");
        assert_eq!(
            buckets.import_credential(&record, false).await.unwrap(),
            Imported::Created
        );
        assert_eq!(
            buckets.import_credential(&record, false).await.unwrap(),
            Imported::Unchanged
        );
        let mut other_secret = record.clone();
        other_secret.secret_key = new_credential("alice").secret_key;
        let mut other_owner = record.clone();
        other_owner.owner = "bob".into();
        for (changed, what) in [(&other_secret, "secret"), (&other_owner, "owner")] {
            match buckets.import_credential(changed, false).await {
                Err(ImportError::Differs {
                    access_key,
                    what: said,
                }) => {
                    assert_eq!(access_key, record.access_key);
                    assert_eq!(said, what);
                }
                other => panic!("expected a refusal, got {other:?}"),
            }
        }
        assert_eq!(
            gateway
                .catalog
                .credential(&record.access_key)
                .await
                .unwrap(),
            Some(record.clone()),
            "a refused import wrote nothing"
        );
        assert_eq!(
            buckets
                .import_credential(&other_secret, true)
                .await
                .unwrap(),
            Imported::Replaced
        );
        assert_eq!(
            gateway
                .catalog
                .credential(&record.access_key)
                .await
                .unwrap(),
            Some(other_secret.clone())
        );
        assert_eq!(
            buckets
                .import_credential(&other_secret, true)
                .await
                .unwrap(),
            Imported::Unchanged,
            "--replace of an equal key writes nothing"
        );
    }

    /// A store in which another import writes `rival` right after the first read of
    /// its key: the import's read and its batch straddle a concurrent writer.
    struct RivalImport {
        inner: InMemoryMetadata,
        rival: std::sync::Mutex<Option<shardlet_model::schema::CredentialRecord>>,
    }

    #[async_trait]
    impl MetadataStore for RivalImport {
        async fn get(&self, key: &[u8]) -> Result<Option<VersionedValue>, MetadataError> {
            let read = self.inner.get(key).await;
            let rival = self.rival.lock().unwrap().take();
            if let Some(rival) = rival {
                let mut batch = Batch::default();
                batch.put(keys::credential(&rival.access_key), encode(&rival));
                self.inner.batch(batch).await?;
            }
            read
        }
        async fn scan(
            &self,
            prefix: &[u8],
            start_after: Option<&[u8]>,
            limit: usize,
        ) -> Result<ScanPage, MetadataError> {
            self.inner.scan(prefix, start_after, limit).await
        }
        async fn batch(&self, batch: Batch) -> Result<BatchOutcome, MetadataError> {
            self.inner.batch(batch).await
        }
    }

    fn racing(rival: &shardlet_model::schema::CredentialRecord) -> Fixture {
        fixture(Arc::new(RivalImport {
            inner: InMemoryMetadata::default(),
            rival: std::sync::Mutex::new(Some(rival.clone())),
        }))
    }

    #[tokio::test]
    async fn of_two_concurrent_imports_of_one_new_key_only_one_creates_it() {
        let record = new_credential("alice");
        let gateway = racing(&record);
        assert_eq!(
            gateway
                .commit
                .buckets()
                .import_credential(&record, false)
                .await
                .unwrap(),
            Imported::Unchanged,
            "the rival created it between our read and our write"
        );
        let mut rival = record.clone();
        rival.secret_key = new_credential("alice").secret_key;
        let gateway = racing(&rival);
        assert!(matches!(
            gateway
                .commit
                .buckets()
                .import_credential(&record, false)
                .await,
            Err(ImportError::Differs { what: "secret", .. })
        ));
        assert_eq!(
            gateway
                .catalog
                .credential(&record.access_key)
                .await
                .unwrap(),
            Some(rival),
            "the rival's key stays: an import never overwrites what it did not read"
        );
    }

    #[test]
    fn key_shapes_are_checked_like_aws_keys() {
        let generated = new_credential("alice");
        assert!(check_access_key(&generated.access_key).is_ok());
        assert!(check_secret_key(&generated.secret_key.0).is_ok());
        assert!(check_access_key("AKIA_0123456789ABCDEF").is_ok());
        for bad in [
            "",
            "SHORT",
            "AKIA/0123456789ABCDEF",
            "AKIA 0123456789ABCDEF",
            "ÄKIA0123456789ABCDEF",
        ] {
            assert!(check_access_key(bad).is_err(), "{bad:?}");
        }
        assert!(check_access_key(&"A".repeat(129)).is_err());
        for bad in [
            "short",
            &"x".repeat(31),
            &format!("{} {}", "a".repeat(20), "b".repeat(20)),
            &"é".repeat(40),
            &"x".repeat(129),
        ] {
            let error = check_secret_key(bad).unwrap_err();
            assert!(
                !error.contains(bad),
                "a refusal never shows the secret: {error}"
            );
        }
        for good in ["admin", "alice@example.com", "team-a.b_c", "7"] {
            assert!(check_owner(good).is_ok(), "{good:?}");
        }
        for bad in ["", "-x", ".x", "a b", "a/b", "ä", &"a".repeat(65)] {
            assert!(check_owner(bad).is_err(), "{bad:?}");
        }
    }
}
