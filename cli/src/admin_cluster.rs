//! `shardlet admin cluster show|set`: the settings every gateway and controller share,
//! stored once in meta-raft (`shardlet_model::settings`).

use crate::output::out;
use std::sync::Arc;

use anyhow::Context;
use shardlet_controller::orphan_grace::orphan_grace;
use shardlet_model::schema::ClusterSettings;
use shardlet_model::settings::{self, SETTINGS_REFRESH_INTERVAL, UPLOAD_DEADLINE_SECONDS_DEFAULT};
use shardlet_model::Metadata;
use shardlet_net::Transport;

use crate::connect::KeyArguments;

#[derive(clap::Subcommand)]
pub enum ClusterCommand {
    /// Print the cluster settings (defaults where none was set).
    Show(ShowArguments),
    /// Change one setting; every gateway and controller applies it within seconds.
    Set(SetArguments),
}

#[derive(clap::Args)]
pub struct ShowArguments {
    /// Metadata service members (host:port), comma-separated.
    #[arg(long, value_delimiter = ',', required = true)]
    meta: Vec<String>,
    #[command(flatten)]
    keys: KeyArguments,
}

#[derive(clap::Args)]
pub struct SetArguments {
    setting: Setting,
    /// The new value (`-3` included, so it is refused with the setting's own message).
    #[arg(allow_hyphen_values = true)]
    value: String,
    /// Metadata service members (host:port), comma-separated.
    #[arg(long, value_delimiter = ',', required = true)]
    meta: Vec<String>,
    #[command(flatten)]
    keys: KeyArguments,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum Setting {
    /// Seconds an upload may take from its first byte to its commit (1 to 604800);
    /// the controller's orphan grace derives from it.
    UploadDeadlineSeconds,
}

fn metadata(
    meta: &[String],
    keys: &KeyArguments,
    transport: &Transport,
) -> anyhow::Result<Metadata> {
    Ok(Metadata::new(Arc::new(crate::connect::admin_meta_client(
        meta, keys, transport,
    )?)))
}

/// Runs `command` against the members, reached over `transport` (the global TLS flags).
pub async fn run(command: ClusterCommand, transport: &Transport) -> anyhow::Result<()> {
    match command {
        ClusterCommand::Show(arguments) => {
            let settings = settings::read(&metadata(&arguments.meta, &arguments.keys, transport)?)
                .await
                .context("cannot read the cluster settings")?;
            print_settings(&settings);
        }
        ClusterCommand::Set(arguments) => {
            let metadata = metadata(&arguments.meta, &arguments.keys, transport)?;
            match arguments.setting {
                Setting::UploadDeadlineSeconds => {
                    let seconds: u64 = arguments.value.trim().parse().map_err(|_| {
                        anyhow::anyhow!(
                            "upload-deadline-seconds: {:?} is not a whole number of seconds",
                            arguments.value
                        )
                    })?;
                    let stored = settings::set_upload_deadline(&metadata, seconds)
                        .await
                        .context("cannot set upload-deadline-seconds")?;
                    print_settings(&stored.record);
                    out!(
                        "# gateways and controllers apply it within {} s",
                        SETTINGS_REFRESH_INTERVAL.as_secs()
                    );
                }
            }
        }
    }
    Ok(())
}

fn print_settings(settings: &ClusterSettings) {
    let deadline = settings.upload_deadline_seconds;
    let default = if deadline == UPLOAD_DEADLINE_SECONDS_DEFAULT {
        " (default)"
    } else {
        ""
    };
    out!("upload-deadline-seconds {deadline}{default}");
    out!(
        "# orphan grace of the controller's scrub: {} s (derived)",
        orphan_grace(std::time::Duration::from_secs(deadline)).as_secs()
    );
}
