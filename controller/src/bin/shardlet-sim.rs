//! `shardlet-sim`: a year of a large cluster under the controller's own policy.
//!
//! Usage: `shardlet-sim [--seed N] [--nodes N] [--days N] [--shardlets N] [--small] [--table [--repair-hours N]]`.
//! The seed is printed first; the last line is `key=value` pairs (deterministic for
//! the seed), everything before it is for people.

use std::process::ExitCode;
use std::time::Instant;

use shardlet_controller::sim::{self, SimConfig};

fn parse(arguments: &[String]) -> Result<SimConfig, String> {
    let mut config = SimConfig::default();
    let mut position = 0;
    while position < arguments.len() {
        let flag = arguments[position].as_str();
        if flag == "--table" {
            position += 1;
            continue;
        }
        if flag == "--small" {
            let seed = config.seed;
            config = SimConfig::small(seed);
            position += 1;
            continue;
        }
        if ![
            "--seed",
            "--nodes",
            "--days",
            "--shardlets",
            "--repair-hours",
        ]
        .contains(&flag)
        {
            return Err(format!("unknown argument {flag:?}"));
        }
        let value = arguments
            .get(position + 1)
            .ok_or_else(|| format!("{flag} needs a value"))?;
        let number = |name: &str| -> Result<u64, String> {
            value
                .parse::<u64>()
                .map_err(|_| format!("{name} must be a non-negative integer, got {value:?}"))
        };
        match flag {
            "--seed" => config.seed = number("--seed")?,
            "--repair-hours" => {
                let hours = number("--repair-hours")?;
                if hours == 0 || hours > 8_760 {
                    return Err(format!(
                        "--repair-hours must be between 1 and 8760, got {hours}"
                    ));
                }
                config.policy.durability.repair_hours = hours as f64;
            }
            "--nodes" => config.nodes = bounded(number("--nodes")?, 9, 100_000, "--nodes")?,
            "--days" => config.days = bounded(number("--days")?, 1, 3_650, "--days")?,
            "--shardlets" => {
                config.sample_shardlets =
                    bounded(number("--shardlets")?, 1, 5_000_000, "--shardlets")?
            }
            other => return Err(format!("unknown argument {other:?}")),
        }
        position += 2;
    }
    Ok(config)
}

fn bounded(value: u64, low: u64, high: u64, name: &str) -> Result<u32, String> {
    if value < low || value > high {
        return Err(format!(
            "{name} must be between {low} and {high}, got {value}"
        ));
    }
    Ok(value as u32)
}

fn main() -> ExitCode {
    let arguments: Vec<String> = std::env::args().skip(1).collect();
    let config = match parse(&arguments) {
        Ok(config) => config,
        Err(error) => {
            eprintln!("shardlet-sim: {error}");
            eprintln!("usage: shardlet-sim [--seed N] [--nodes N] [--days N] [--shardlets N] [--small] [--table [--repair-hours N]]");
            return ExitCode::from(2);
        }
    };
    if arguments.iter().any(|a| a == "--table") {
        return match sim::policy_table(&config) {
            Ok(table) => {
                print!("{table}");
                ExitCode::SUCCESS
            }
            Err(error) => {
                eprintln!("shardlet-sim: {error}");
                ExitCode::FAILURE
            }
        };
    }
    println!("seed {}", config.seed);
    let started = Instant::now();
    match sim::run(&config) {
        Ok(report) => {
            println!("{}", report.summary());
            println!("wall time {:.1} s", started.elapsed().as_secs_f64());
            println!("{}", report.last_line());
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("shardlet-sim: {error} (seed {})", config.seed);
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::parse;

    fn arguments(text: &str) -> Vec<String> {
        text.split_whitespace().map(str::to_string).collect()
    }

    #[test]
    fn flags_set_the_config() {
        let Ok(config) = parse(&arguments(
            "--seed 9 --nodes 500 --days 30 --shardlets 1000",
        )) else {
            panic!("valid flags rejected");
        };
        assert_eq!(
            (
                config.seed,
                config.nodes,
                config.days,
                config.sample_shardlets
            ),
            (9, 500, 30, 1000)
        );
    }

    #[test]
    fn bad_arguments_are_named_in_the_error() {
        for (text, expected) in [
            ("--bogus", "unknown argument \"--bogus\""),
            ("--nodes", "--nodes needs a value"),
            ("--nodes x", "--nodes must be a non-negative integer"),
            ("--nodes -5", "--nodes must be a non-negative integer"),
            ("--nodes 3", "--nodes must be between 9 and 100000"),
            ("--days 0", "--days must be between 1 and 3650"),
            ("--shardlets 99999999", "--shardlets must be between"),
            (
                "--repair-hours 0",
                "--repair-hours must be between 1 and 8760",
            ),
            (
                "--seed 18446744073709551616",
                "--seed must be a non-negative integer",
            ),
        ] {
            let Err(error) = parse(&arguments(text)) else {
                panic!("{text} accepted");
            };
            assert!(error.contains(expected), "{text}: {error}");
        }
    }
}
