//! Read access to the applied key-value data, shared with the HTTP API.

use std::sync::{Arc, RwLock};

use rocksdb::{IteratorMode, DB};

use crate::blob::Blob;
use crate::command::{ScanPage, VersionedValue};
use crate::storage::KvFamily;

/// Reads see only applied (committed) state; whether that is linearizable is decided by
/// the caller (see `server::kv_routes`). Each read holds `serving` for reading while it
/// runs, so a snapshot install switching families (which takes it for writing) waits for
/// reads of the old family to end: a read sees the old state or the new one, never the
/// old family after it was emptied.
#[derive(Clone)]
pub struct KvReader {
    db: Arc<DB>,
    serving: Arc<RwLock<KvFamily>>,
}

impl KvReader {
    pub fn new(db: Arc<DB>, serving: Arc<RwLock<KvFamily>>) -> Self {
        KvReader { db, serving }
    }

    fn with_family<T>(
        &self,
        read: impl FnOnce(&rocksdb::ColumnFamily) -> anyhow::Result<T>,
    ) -> anyhow::Result<T> {
        let serving = self
            .serving
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let name = serving.name();
        let family = self
            .db
            .cf_handle(name)
            .ok_or_else(|| anyhow::anyhow!("no {name} column family"))?;
        read(family)
    }

    pub fn get(&self, key: &[u8]) -> anyhow::Result<Option<VersionedValue>> {
        self.with_family(|family| match self.db.get_cf(family, key)? {
            None => Ok(None),
            Some(bytes) => VersionedValue::decode(&bytes)
                .map(Some)
                .ok_or_else(|| anyhow::anyhow!("stored entry for a key is corrupt (too short)")),
        })
    }

    /// Keys starting with `prefix`, in byte order, strictly after `start_after` when given,
    /// at most `limit` of them.
    pub fn scan(
        &self,
        prefix: &[u8],
        start_after: Option<&[u8]>,
        limit: usize,
    ) -> anyhow::Result<ScanPage> {
        let start = match start_after {
            Some(after) if after >= prefix => after.to_vec(),
            _ => prefix.to_vec(),
        };
        self.with_family(|family| {
            let iterator = self.db.iterator_cf(
                family,
                IteratorMode::From(&start, rocksdb::Direction::Forward),
            );
            let mut page = ScanPage::default();
            for item in iterator {
                let (key, bytes) = item?;
                if !key.starts_with(prefix) {
                    break;
                }
                if Some(key.as_ref()) == start_after {
                    continue;
                }
                if page.entries.len() == limit {
                    page.next_start_after = page.entries.last().map(|(key, _)| key.clone());
                    break;
                }
                let value = VersionedValue::decode(&bytes).ok_or_else(|| {
                    anyhow::anyhow!("stored entry for a key is corrupt (too short)")
                })?;
                page.entries.push((Blob(key.to_vec()), value));
            }
            Ok(page)
        })
    }
}
