//! Writing shardlet records together with the node → fragment index, in one atomic
//! batch, so the index can never disagree with the records it indexes.

use std::collections::BTreeSet;

use shardlet_meta::command::{Batch, Condition, Operation};

use super::encoding::encode;
use super::keys;
use super::records::ShardletRecord;

fn index_keys(record: &ShardletRecord) -> BTreeSet<Vec<u8>> {
    record
        .fragments
        .iter()
        .map(|location| keys::node_fragment(location.node, record.fragment_id(location)))
        .collect()
}

/// A batch that replaces shardlet `previous` (`None`: new shardlet) by `next`, moving
/// its index entries, guarded by `expected_version` (the version `previous` was read at;
/// `0` for a new shardlet). If another writer changed the shardlet meanwhile the batch
/// fails as a whole: record and index always move together.
pub fn write_shardlet(
    previous: Option<&ShardletRecord>,
    next: &ShardletRecord,
    expected_version: u64,
) -> Batch {
    let key = keys::shardlet(next.id);
    let old_index = previous.map(index_keys).unwrap_or_default();
    let new_index = index_keys(next);
    let mut operations = vec![Operation::Put {
        key: key.clone().into(),
        value: encode(next).into(),
    }];
    operations.extend(
        old_index
            .difference(&new_index)
            .map(|stale| Operation::Delete {
                key: stale.clone().into(),
            }),
    );
    operations.extend(
        new_index
            .difference(&old_index)
            .map(|added| Operation::Put {
                key: added.clone().into(),
                value: Vec::new().into(),
            }),
    );
    Batch {
        conditions: vec![Condition::VersionEquals {
            key: key.into(),
            version: expected_version,
        }],
        operations,
    }
}

/// A batch that deletes a shardlet and its index entries, guarded like [`write_shardlet`].
pub fn delete_shardlet(record: &ShardletRecord, expected_version: u64) -> Batch {
    let key = keys::shardlet(record.id);
    let mut operations = vec![Operation::Delete {
        key: key.clone().into(),
    }];
    operations.extend(
        index_keys(record)
            .into_iter()
            .map(|stale| Operation::Delete { key: stale.into() }),
    );
    Batch {
        conditions: vec![Condition::VersionEquals {
            key: key.into(),
            version: expected_version,
        }],
        operations,
    }
}
