//! Deterministic fleet simulation (issue 14 item 2, DESIGN "Testing strategy"): N agents
//! against the in-process reference manager over M simulated years, in virtual time, with
//! product-like behaviour and faults, a final 35-day quiet period, then convergence checks.
//!
//! ```text
//! cargo run --release --features manager --example fleet -- --agents 10000 --years 2 --seed 1 --out fleet-out
//! ```
//!
//! Every invariant is checked while the run goes and printed with its count at the end; a
//! violation makes the run exit 1 after printing the seed and the agent id to replay. The same
//! `--seed` prints the same final digest (FNV-1a over every agent's licensing part and the
//! manager's records, with the randomized ECDSA signatures left out).

mod chart;
mod digest;
mod floor;
mod reference;
mod rng;
mod sim;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;

/// Deterministic fleet simulation of smart-agent against the in-process reference manager.
#[derive(Parser, Debug, Clone)]
#[command(name = "fleet")]
pub struct Args {
    /// Number of product instances.
    #[arg(long, default_value_t = 10_000)]
    pub agents: usize,
    /// Simulated years (the last 35 days are the quiet period).
    #[arg(long, default_value_t = 2)]
    pub years: u32,
    /// Seed of the run: the same seed replays the same run.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Directory for fleet.csv and fleet.svg (not written without it).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Print every step of this agent (to replay a violation).
    #[arg(long)]
    pub trace: Option<usize>,
    /// Test only: deliberately break an invariant (the run must then fail with a replay line).
    /// `evaluation` gives one agent a fresh evaluation period behind the agent's back.
    #[arg(long, hide = true, value_parser = ["evaluation"])]
    pub break_invariant: Option<String>,
}

fn main() -> ExitCode {
    let args = Args::parse();
    if args.agents == 0 || args.years == 0 {
        eprintln!("fleet: --agents and --years must be at least 1");
        return ExitCode::from(2);
    }
    match sim::run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(failed) => {
            eprintln!("{failed}");
            ExitCode::from(1)
        }
    }
}
