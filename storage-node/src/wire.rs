//! What both ends of the node's HTTP API agree on: header names, paths and the JSON
//! bodies. The server routes and answers with them, the client sends and reads them;
//! neither imports the other. The contract itself is docs/storage-node.md.

use shardlet_core::{Crc32c, FragmentId};

/// The whole-fragment CRC32C, 8 lowercase hex digits: sent with a PUT (the server checks
/// the body against it), returned by PUT, HEAD and GET.
pub const CRC_HEADER: &str = "x-shardlet-crc32c";
/// The whole fragment's payload length on HEAD and GET (a ranged GET's Content-Length is
/// only the range's).
pub const LENGTH_HEADER: &str = "x-shardlet-length";
/// On a PUT, `keep`: this copy will be read soon (it is the replica reads of its shardlet
/// start at), so write it through the page cache; without it, large fragments bypass the
/// cache (`O_DIRECT`). Only a performance hint: any value but [`CACHE_KEEP`] is a 400.
pub const CACHE_HEADER: &str = "x-shardlet-cache";
/// The one accepted value of [`CACHE_HEADER`].
pub const CACHE_KEEP: &str = "keep";
/// On every error response: the snake_case code that the JSON body's `error` field also
/// holds (a HEAD answer has no body, and a body may be cut short).
pub const ERROR_HEADER: &str = "x-shardlet-error";

/// Listing (GET, `?after=<id>&limit=<n>`).
pub const FRAGMENTS_PATH: &str = "/v1/fragments";
/// One fragment (PUT, GET, HEAD, DELETE), as an axum route pattern.
pub const FRAGMENT_ROUTE: &str = "/v1/fragments/{id}";
/// Unauthenticated health report.
pub const HEALTH_PATH: &str = "/health";
/// Unauthenticated Prometheus metrics.
pub const METRICS_PATH: &str = "/metrics";

/// The path of one fragment, [`FRAGMENT_ROUTE`] filled in.
pub fn fragment_path(id: &FragmentId) -> String {
    format!("{FRAGMENTS_PATH}/{id}")
}

/// One entry of a listing. A damaged file is listed with length 0 and CRC `00000000`, so
/// a scrub finds it.
#[derive(Debug, Clone, serde::Deserialize, serde::Serialize, PartialEq, Eq)]
pub struct ListedFragment {
    pub id: FragmentId,
    pub length: u64,
    pub crc32c: Crc32c,
}

/// The body of a listing: ids ascending; `next_after` is set exactly when more follow.
#[derive(Debug, Clone, serde::Deserialize, serde::Serialize, PartialEq, Eq)]
pub struct FragmentPage {
    pub fragments: Vec<ListedFragment>,
    pub next_after: Option<FragmentId>,
}

/// The body of every error response: `{"error":"<snake_case_code>","message":"<reason>"}`.
#[derive(Debug, Clone, serde::Deserialize, serde::Serialize, PartialEq, Eq)]
pub struct ErrorBody {
    pub error: String,
    pub message: String,
}

#[cfg(test)]
mod tests {
    use shardlet_core::{FragmentIndex, Generation, ObjectId, ShardletId};

    use super::*;

    /// Fragment `index` of generation `generation` of shardlet `shardlet` of the
    /// object whose id bytes are all `object_byte`.
    fn fragment_id(object_byte: u8, shardlet: u32, generation: u32, index: u8) -> FragmentId {
        FragmentId::new(
            ShardletId::new(ObjectId([object_byte; 16]), shardlet),
            Generation(generation),
            FragmentIndex(index),
        )
    }

    #[test]
    fn a_fragment_path_is_the_route_the_server_serves() {
        let id = fragment_id(0xab, 3, 1, 2);
        assert_eq!(
            fragment_path(&id),
            FRAGMENT_ROUTE.replace("{id}", &id.to_string())
        );
        assert!(FRAGMENT_ROUTE.starts_with(FRAGMENTS_PATH));
    }

    #[test]
    fn the_json_bodies_keep_their_field_names_and_order() {
        let id = fragment_id(0x01, 0, 0, 0);
        let page = FragmentPage {
            fragments: vec![ListedFragment {
                id,
                length: 5,
                crc32c: Crc32c(0xdead_beef),
            }],
            next_after: None,
        };
        let text = serde_json::to_string(&page).unwrap_or_default();
        assert_eq!(
            text,
            format!(
                r#"{{"fragments":[{{"id":"{id}","length":5,"crc32c":"deadbeef"}}],"next_after":null}}"#
            )
        );
        let error = ErrorBody {
            error: "not_found".into(),
            message: "fragment not found".into(),
        };
        assert_eq!(
            serde_json::to_string(&error).unwrap_or_default(),
            r#"{"error":"not_found","message":"fragment not found"}"#
        );
    }
}
