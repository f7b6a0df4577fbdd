//! Who may call which route, by the caller's key (`crate::auth`): checked by the
//! [`super::incoming::Incoming`] extractor of every authenticated route, so no route can
//! forget it.

use shardlet_auth::{KeyName, MetaCaller};

use crate::wire::{
    PATH_ADD_LEARNER, PATH_CHANGE_MEMBERSHIP, PATH_PROMOTE, PATH_REMOVE, PATH_STATUS,
};

/// Which callers a route admits: raft RPC is for members; membership for the admin;
/// status for the admin and for members (a member being formed asks the others who they
/// are, `crate::formation`); keys and values for the gateway, the controller and the
/// admin. A member
/// is also admitted to the client routes when it forwards a request to the leader (the
/// follower checked the original caller; a member holds the `meta` key and could derive
/// any caller key, so admitting it costs nothing).
pub fn authorize(path: &str, caller: MetaCaller, forwarded: bool) -> Result<(), String> {
    use MetaCaller::{Admin, Controller, Gateway, Member};
    let raft = [
        crate::network::PATH_APPEND,
        crate::network::PATH_VOTE,
        crate::network::PATH_SNAPSHOT,
    ];
    let allowed: &[MetaCaller] = if raft.contains(&path) {
        &[Member]
    } else if path == PATH_STATUS {
        &[Admin, Member]
    } else if [
        PATH_ADD_LEARNER,
        PATH_CHANGE_MEMBERSHIP,
        PATH_PROMOTE,
        PATH_REMOVE,
    ]
    .contains(&path)
    {
        &[Admin]
    } else {
        &[Gateway, Controller, Admin]
    };
    if allowed.contains(&caller) || (caller == Member && forwarded && !raft.contains(&path)) {
        return Ok(());
    }
    let names: Vec<String> = allowed
        .iter()
        .map(|caller| KeyName::MetaCaller(*caller).to_string())
        .collect();
    Err(format!(
        "{path} is not open to key {}; it takes {}",
        KeyName::MetaCaller(caller),
        names.join(", ")
    ))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn routes_admit_their_callers_only() {
        use MetaCaller::*;
        let cases = [
            ("/raft/append", Member, false, true),
            ("/raft/vote", Admin, false, false),
            ("/raft/snapshot", Gateway, false, false),
            ("/raft/vote", Member, true, true),
            ("/kv/put", Gateway, false, true),
            ("/kv/batch", Controller, false, true),
            ("/kv/get", Admin, false, true),
            ("/kv/get", Member, false, false),
            ("/kv/get", Member, true, true),
            ("/cluster/add-learner", Admin, false, true),
            ("/cluster/change-membership", Gateway, false, false),
            ("/cluster/change-membership", Controller, false, false),
            ("/cluster/change-membership", Member, true, true),
            ("/cluster/status", Admin, false, true),
            ("/cluster/status", Member, false, true),
            ("/cluster/status", Gateway, false, false),
            ("/cluster/status", Controller, false, false),
            ("/cluster/promote", Admin, false, true),
            ("/cluster/promote", Controller, false, false),
            ("/cluster/remove", Admin, false, true),
            ("/cluster/remove", Gateway, false, false),
            ("/cluster/remove", Member, false, false),
            ("/cluster/remove", Member, true, true),
        ];
        for (path, caller, forwarded, allowed) in cases {
            assert_eq!(
                authorize(path, caller, forwarded).is_ok(),
                allowed,
                "{path} {caller:?} forwarded={forwarded}"
            );
        }
        let refusal = authorize("/cluster/change-membership", Gateway, false).unwrap_err();
        assert!(
            refusal.contains("meta.gateway") && refusal.contains("meta.admin"),
            "{refusal}"
        );
    }
}
