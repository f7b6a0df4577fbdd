//! What `shardlet meta` was told about forming a cluster ([`Formation`]) and the
//! parsing of `--initial-members`: plain data, read by `crate::config`; what a member
//! does with it is `crate::formation`.

use std::collections::BTreeMap;

use crate::types::MemberId;

/// Most members `--initial-members` may name: raft clusters beyond 7 voters only slow
/// writes down; grow further with learners.
pub const INITIAL_MEMBERS_MAX: usize = 7;

/// How this member comes to belong to a cluster (`crate::formation` explains each way).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum Formation {
    #[default]
    Join,
    Bootstrap {
        /// Addresses where other members of this cluster may run: asked first.
        peers: Vec<String>,
    },
    InitialMembers(BTreeMap<MemberId, String>),
}

/// Parses `1=host:port,2=host:port,…`; errors name the flag and the entry.
pub fn parse_initial_members(text: &str) -> Result<BTreeMap<MemberId, String>, String> {
    let mut members = BTreeMap::new();
    for entry in text
        .split(',')
        .map(str::trim)
        .filter(|entry| !entry.is_empty())
    {
        let (id, address) = entry.split_once('=').ok_or_else(|| {
            format!("--initial-members: {entry:?} is not ID=HOST:PORT (e.g. 1=10.0.0.1:7380)")
        })?;
        let id: MemberId = id.trim().parse().map_err(|_| {
            format!(
                "--initial-members: {:?} in {entry:?} is not a member id (a number)",
                id.trim()
            )
        })?;
        let address = address.trim();
        let valid_address = address.rsplit_once(':').is_some_and(|(host, port)| {
            !host.is_empty() && port.parse::<u16>().is_ok_and(|port| port != 0)
        });
        if !valid_address || address.contains('/') {
            return Err(format!(
                "--initial-members: {address:?} of member {id} is not HOST:PORT with a port other than 0"
            ));
        }
        if members.insert(id, address.to_string()).is_some() {
            return Err(format!("--initial-members: member {id} is listed twice"));
        }
    }
    if members.is_empty() {
        return Err("--initial-members: no member listed (ID=HOST:PORT,…)".into());
    }
    if members.len() > INITIAL_MEMBERS_MAX {
        return Err(format!(
            "--initial-members: {} members listed, at most {INITIAL_MEMBERS_MAX} (INITIAL_MEMBERS_MAX); add more later as learners",
            members.len()
        ));
    }
    if members.len() % 2 == 0 {
        return Err(format!(
            "--initial-members: {} members tolerate no more failures than {} but need more votes for every write; list an odd number (1, 3, 5 or 7)",
            members.len(),
            members.len() - 1
        ));
    }
    let mut addresses: Vec<&String> = members.values().collect();
    addresses.sort();
    if addresses.windows(2).any(|pair| pair[0] == pair[1]) {
        return Err("--initial-members: two members share one address".into());
    }
    Ok(members)
}
