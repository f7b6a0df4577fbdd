//! [`PortConfig`]: everything an operator sets on one listening port, in one value each
//! service's configuration holds.

use crate::limits::{LimitError, ServerLimits};
use crate::metrics_token::MetricsToken;
use crate::tls::ServerTls;

#[derive(Clone, Debug, Default)]
pub struct PortConfig {
    pub limits: ServerLimits,
    /// When set, `GET /metrics` needs `Authorization: Bearer <token>`.
    pub metrics_token: Option<MetricsToken>,
    /// When set, the port speaks HTTPS only; `None` is plain HTTP (`--insecure-plaintext`).
    pub tls: Option<ServerTls>,
}

impl PortConfig {
    pub fn with_limits(limits: ServerLimits) -> Self {
        Self {
            limits,
            ..Self::default()
        }
    }

    pub fn validate(&self) -> Result<(), LimitError> {
        self.limits.validate()
    }
}
