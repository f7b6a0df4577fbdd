use clap::{Parser, Subcommand};

mod meta_command;

#[derive(Parser, Debug)]
#[command(name = "shardlet", about = "Shardlet: a self-healing S3-compatible object store")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run one member of the metadata service (openraft over RocksDB).
    Meta(meta_command::MetaArgs),
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,openraft=warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    match Cli::parse().command {
        Command::Meta(args) => meta_command::run(args).await,
    }
}
