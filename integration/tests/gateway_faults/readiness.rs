//! `/ready` as distinct from `/health` on the gateway (S3 and admin ports) and the
//! controller: both answer 200 while the metadata service answers, 503 with a reason
//! once it has been down for a few refreshes (while `/health` stays 200), and 200 again
//! once it is back. Then SIGTERM stops each with exit 0.

use std::time::Duration;

use shardlet_testkit::{shardlet_binary, wait_until, Cluster};

/// The gateway and controller re-read the settings every 5 s and become not ready after
/// three misses; generous on a loaded machine.
const TRANSITION_DEADLINE: Duration = Duration::from_secs(90);
/// Their shutdown grace is 10 s; generous on a loaded machine.
const STOP_DEADLINE: Duration = Duration::from_secs(60);

async fn get(url: String) -> Option<(u16, serde_json::Value)> {
    let response = reqwest::get(url).await.ok()?;
    let code = response.status().as_u16();
    let text = response.text().await.ok()?;
    Some((
        code,
        serde_json::from_str(&text).unwrap_or(serde_json::Value::String(text)),
    ))
}

async fn wait_for(url: &str, code: u16, what: &str) -> serde_json::Value {
    wait_until(TRANSITION_DEADLINE, what, || async {
        get(url.to_string())
            .await
            .filter(|(got, _)| *got == code)
            .map(|(_, body)| body)
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gateway_and_controller_are_ready_only_while_metadata_answers() {
    let mut cluster = Cluster::start(&shardlet_binary!(), 3).await;
    let controller = cluster.start_controller("controller", &[]).await;
    let urls = [
        (
            "gateway S3 port",
            format!("http://{}/ready", cluster.gateway.address),
        ),
        (
            "gateway admin port",
            format!("http://{}/ready", cluster.gateway.admin_address()),
        ),
        ("controller", format!("http://{}/ready", controller.address)),
    ];
    for (name, url) in &urls {
        let body = wait_for(url, 200, &format!("{name} ready")).await;
        assert_eq!(body["ready"], true, "{name}: {body}");
    }

    cluster.meta.kill_9();
    for (name, url) in &urls {
        let body = wait_for(url, 503, &format!("{name} not ready without metadata")).await;
        assert!(
            body["reason"]
                .as_str()
                .unwrap_or_default()
                .contains("metadata"),
            "{name}: {body}"
        );
    }
    let health = get(format!("http://{}/health", cluster.gateway.address))
        .await
        .unwrap();
    assert_eq!(health.0, 200, "the gateway stays live: {health:?}");
    let health = get(format!("http://{}/health", controller.address))
        .await
        .unwrap();
    assert_eq!(health.0, 200, "the controller stays live: {health:?}");

    cluster.meta.restart().await;
    for (name, url) in &urls {
        wait_for(url, 200, &format!("{name} ready again")).await;
    }

    // SIGTERM is a clean stop for both (and for the member, whose data is then flushed).
    let mut controller = controller;
    for (name, process) in [
        ("controller", &mut controller),
        ("gateway", &mut cluster.gateway),
        ("metadata member", &mut cluster.meta),
    ] {
        let status = process.terminate(STOP_DEADLINE).await;
        assert_eq!(status.code(), Some(0), "{name} after SIGTERM: {status}");
    }
}
