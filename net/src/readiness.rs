//! `GET /ready`: readiness, as distinct from liveness (`GET /health`).
//!
//! `/health` answers as long as the process runs (an orchestrator restarts it when it
//! stops answering); `/ready` answers 200 only while the process can do its job, and 503
//! with a JSON reason otherwise (an orchestrator or load balancer then sends it no
//! traffic, without restarting it). Each service decides what "ready" means (meta-raft:
//! knows a leader and has caught up; gateway: metadata answers and it has a topology;
//! storage node: its data directory takes a synced write; controller: metadata answers;
//! predictor: its model is loaded). Both are unauthenticated, like `/health`: they say
//! nothing a stranger could use beyond "up" or "not up, because …", and each service
//! keeps its check cheap or cached so probing it costs nothing.

/// The path every server answers readiness on.
pub const READY_PATH: &str = "/ready";

/// Whether a process can serve, and if not, why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Readiness {
    Ready,
    NotReady(String),
}

impl Readiness {
    pub fn not_ready(reason: impl Into<String>) -> Self {
        Readiness::NotReady(reason.into())
    }

    pub fn is_ready(&self) -> bool {
        matches!(self, Readiness::Ready)
    }

    /// 200 when ready, 503 otherwise.
    pub fn status(&self) -> http::StatusCode {
        match self {
            Readiness::Ready => http::StatusCode::OK,
            Readiness::NotReady(_) => http::StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    /// `{"ready":true}` or `{"ready":false,"reason":"…"}`.
    pub fn json(&self) -> String {
        let value = match self {
            Readiness::Ready => serde_json::json!({ "ready": true }),
            Readiness::NotReady(reason) => serde_json::json!({ "ready": false, "reason": reason }),
        };
        value.to_string()
    }

    /// The whole answer, for any body type a `String` converts into.
    pub fn response<B: From<String>>(&self) -> http::Response<B> {
        let mut response = http::Response::new(B::from(self.json()));
        *response.status_mut() = self.status();
        response.headers_mut().insert(
            http::header::CONTENT_TYPE,
            http::HeaderValue::from_static("application/json"),
        );
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ready_is_200_and_not_ready_is_503_with_the_reason_in_json() {
        let ready: http::Response<String> = Readiness::Ready.response();
        assert_eq!(ready.status(), 200);
        assert_eq!(ready.body(), r#"{"ready":true}"#);
        let waiting: http::Response<String> =
            Readiness::not_ready("no leader \"known\"").response();
        assert_eq!(waiting.status(), 503);
        let body: serde_json::Value = serde_json::from_str(waiting.body()).unwrap_or_default();
        assert_eq!(body["ready"], false);
        assert_eq!(body["reason"], "no leader \"known\"");
    }
}
