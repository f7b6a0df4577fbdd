//! `shardlet-predictor`: simulate, train, evaluate, serve.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use clap::{Parser, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};

use shardlet_predictor::backblaze::{csv_files, import_fleet};
use shardlet_predictor::dataset::Fleet;
use shardlet_predictor::evaluate::{baseline_results, evaluate_method, markdown};
use shardlet_predictor::model::LstmModel;
use shardlet_predictor::plot::write_pr_curves;
use shardlet_predictor::simulator::{read_failure_modes, simulate, SimulationConfig};
use shardlet_predictor::split::Split;
use shardlet_predictor::train::{predict_windows, train, TrainConfig};

#[derive(Parser)]
#[command(
    name = "shardlet-predictor",
    about = "Shardlet's node failure predictor",
    version
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Simulate a fleet into daily Backblaze-format CSVs plus failure_modes.csv.
    Simulate {
        #[arg(long)]
        nodes: u32,
        #[arg(long)]
        days: u32,
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Multiplies every disk model's failure rate.
        #[arg(long, default_value_t = 1.0)]
        failure_rate_scale: f64,
        #[arg(long)]
        out: PathBuf,
    },
    /// Train the LSTM on a Backblaze-format file or directory.
    Train {
        #[arg(long)]
        data: PathBuf,
        #[arg(long)]
        horizon_days: u32,
        #[arg(long)]
        out: PathBuf,
        #[arg(long, default_value_t = 14)]
        window_intervals: usize,
        #[arg(long, default_value_t = 32)]
        hidden_size: usize,
        #[arg(long, default_value_t = 30)]
        epochs: usize,
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Torch intra-op threads (1 is fastest on a shared 2-core box).
        #[arg(long, default_value_t = 1)]
        threads: i32,
    },
    /// Evaluate the model and the baselines on the model's held-out split.
    Evaluate {
        #[arg(long)]
        model: PathBuf,
        #[arg(long)]
        data: PathBuf,
        /// Where to write the Markdown table and the PR curve PNG (default: beside the model).
        #[arg(long)]
        report: Option<PathBuf>,
    },
    /// Serve the model over HTTP (`/v1/score` signed with the `predictor` key).
    Serve {
        #[arg(long)]
        model: PathBuf,
        #[arg(long, default_value = "127.0.0.1:9400")]
        listen: SocketAddr,
        #[command(flatten)]
        server: shardlet_net::arguments::ServerArguments,
        #[command(flatten)]
        tls: shardlet_net::arguments::TlsArguments,
        /// This sidecar's key file (`shardlet admin key derive --role predictor`); or
        /// set SHARDLET_KEYS.
        #[arg(long)]
        key_file: Option<PathBuf>,
        /// The cluster secret instead (development; the predictor key is derived).
        #[arg(long)]
        secret_file: Option<PathBuf>,
    },
}

fn bar(length: u64, what: &str) -> ProgressBar {
    let bar = ProgressBar::new(length);
    let style = ProgressStyle::with_template(
        "{prefix:>10} [{elapsed_precise}] {wide_bar} {pos}/{len} {msg}",
    )
    .unwrap_or_else(|_| ProgressStyle::default_bar());
    bar.set_style(style);
    bar.set_prefix(what.to_string());
    bar.enable_steady_tick(Duration::from_millis(250));
    bar
}

fn import(data: &Path) -> anyhow::Result<Fleet> {
    let files = csv_files(data)?;
    let progress = bar(files.len() as u64, "import");
    let mut rows = 0u64;
    let fleet = import_fleet(data, |_, file_rows| {
        rows += file_rows;
        progress.set_message(format!("{rows} rows"));
        progress.inc(1);
    })?;
    progress.finish_with_message(format!(
        "{rows} rows, {} nodes, {} failed",
        fleet.nodes.len(),
        fleet.failed_nodes()
    ));
    Ok(fleet)
}

fn main() {
    shardlet_net::process_metrics::set_build_commit(env!("SHARDLET_BUILD_COMMIT"));
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        // A closed stderr must not end the sidecar (see the same line in `shardlet`).
        .log_internal_errors(false)
        .with_writer(std::io::stderr)
        .init();
    if let Err(error) = run(Cli::parse()) {
        eprintln!("shardlet-predictor: {error:#}");
        std::process::exit(1);
    }
}

fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Simulate {
            nodes,
            days,
            seed,
            failure_rate_scale,
            out,
        } => {
            let config = SimulationConfig {
                nodes,
                days,
                seed,
                failure_rate_scale,
            };
            let progress = bar(u64::from(days), "simulate");
            let failures = simulate(&config, &out, |_| progress.inc(1))?;
            progress.finish_with_message(format!("{} failures", failures.len()));
            println!(
                "simulated {nodes} nodes over {days} days (seed {seed}) into {}: {} failures",
                out.display(),
                failures.len()
            );
        }
        Command::Train {
            data,
            horizon_days,
            out,
            window_intervals,
            hidden_size,
            epochs,
            seed,
            threads,
        } => {
            let fleet = import(&data)?;
            let mut config = TrainConfig::new(horizon_days, seed);
            config.window_intervals = window_intervals;
            config.hidden_size = hidden_size;
            config.epochs_max = epochs;
            config.threads = threads;
            let progress = bar(epochs as u64, "train");
            let trained = train(&fleet, &config, &data.display().to_string(), &progress)?;
            trained
                .model
                .save(&out)
                .with_context(|| format!("saving {}", out.display()))?;
            let training = &trained.model.metadata.training;
            println!(
                "model {} saved to {}: validation PR-AUC {:.3} (epoch {} of {}), threshold {:.3}, {:.0} windows/s",
                trained.model.metadata.model_version,
                out.display(),
                training.validation_pr_auc,
                training.best_epoch,
                training.epochs_run,
                trained.model.metadata.threshold,
                trained.windows_per_second
            );
        }
        Command::Evaluate {
            model,
            data,
            report,
        } => {
            let lstm = LstmModel::load(&model)?;
            tch::set_num_threads(1);
            let fleet = import(&data)?;
            let modes = read_failure_modes(if data.is_dir() {
                &data
            } else {
                data.parent().unwrap_or(Path::new("."))
            })?;
            let metadata = &lstm.metadata;
            let split = Split::build(&fleet, &metadata.split)?;
            let progress = bar(3, "evaluate");
            progress.set_message("lstm");
            let lstm_scores = predict_windows(&lstm, &fleet, &split.test);
            let mut results = vec![evaluate_method(
                "lstm",
                &fleet,
                &split.test,
                &lstm_scores,
                metadata.threshold,
                modes.as_ref(),
            )];
            progress.inc(1);
            progress.set_message("baselines");
            results.extend(baseline_results(
                &fleet,
                &split,
                &metadata.normalizer,
                metadata.training.negatives_per_positive,
                metadata.split.seed,
                modes.as_ref(),
            ));
            progress.inc(1);
            let table = markdown(&results, &split);
            let report = report.unwrap_or_else(|| model.join("evaluation"));
            std::fs::create_dir_all(&report)?;
            std::fs::write(report.join("evaluation.md"), &table)?;
            let title = format!("PR curves, {}-day horizon", metadata.horizon_days);
            write_pr_curves(&results, &title, &report.join("pr_curve.png"))?;
            progress.inc(1);
            progress.finish_and_clear();
            println!("{table}");
            println!(
                "wrote {} and {}",
                report.join("evaluation.md").display(),
                report.join("pr_curve.png").display()
            );
        }
        Command::Serve {
            model,
            listen,
            server,
            tls,
            key_file,
            secret_file,
        } => {
            let port = server.port(shardlet_net::ServerLimits::default(), &tls)?;
            let key = predictor_key(key_file.as_deref(), secret_file.as_deref())?;
            let model = LstmModel::load(&model)?;
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()?;
            runtime.block_on(shardlet_predictor::serve::serve(
                model,
                listen,
                port,
                key,
                |address| {
                    // Tests and scripts read this line to learn the OS-chosen port.
                    println!("listening on {address}");
                },
                // SIGTERM (an orchestrator, `shardlet dev`) or SIGINT: stop accepting,
                // let scores in flight finish within the shutdown grace, exit 0.
                shardlet_net::shutdown_signal(),
            ))?;
        }
    }
    Ok(())
}

/// The `predictor` key from `--key-file`, `--secret-file` or the environment
/// (`SHARDLET_KEYS`, `SHARDLET_CLUSTER_SECRET`); errors name the source.
fn predictor_key(
    key_file: Option<&Path>,
    secret_file: Option<&Path>,
) -> anyhow::Result<shardlet_auth::Key> {
    use shardlet_auth::load::{load_keys, KeySources, ENV_CLUSTER_SECRET, ENV_KEYS};
    let keys_environment = std::env::var(ENV_KEYS).ok();
    let secret_environment = std::env::var(ENV_CLUSTER_SECRET).ok();
    let loaded = load_keys(&KeySources {
        key_file,
        secret_file,
        keys_environment: keys_environment.as_deref(),
        secret_environment: secret_environment.as_deref(),
    })?;
    for warning in &loaded.warnings {
        tracing::warn!("{warning}");
    }
    if loaded.holds_root() {
        tracing::warn!(
            source = %loaded.source,
            "running with the cluster secret; a sidecar should hold only its key (shardlet admin key derive --role predictor)"
        );
    }
    let key = loaded
        .keyring
        .require(shardlet_auth::KeyName::Predictor)
        .map_err(|error| anyhow::anyhow!("{}: {error}", loaded.source))?;
    Ok(key)
}
