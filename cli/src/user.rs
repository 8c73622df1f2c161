//! `strata user set-password|describe|delete`: SCRAM credentials (KIP-554), like
//! `kafka-configs.sh --entity-type users`. The password is read from stdin (first line), never an argument.

use std::io::BufRead;

use serde::Serialize;
use strata_client::scram::{Mechanism, MIN_ITERATIONS};

use crate::options::Options;
use crate::table;
use crate::Outcome;

fn mechanism(s: &str) -> Result<Mechanism, String> {
    Mechanism::from_name(&s.to_ascii_uppercase()).ok_or_else(|| format!("{s:?}: expected SCRAM-SHA-256 or SCRAM-SHA-512"))
}

#[derive(clap::Subcommand)]
pub enum Command {
    /// Set a user's password for one mechanism (the first line of stdin).
    SetPassword {
        user: String,
        #[arg(long, default_value = "SCRAM-SHA-512", value_parser = mechanism)]
        mechanism: Mechanism,
        #[arg(long, default_value_t = 8192, value_parser = clap::value_parser!(i32).range(i64::from(MIN_ITERATIONS)..=16384))]
        iterations: i32,
    },
    /// A user's mechanisms and iterations (never secrets).
    Describe { user: String },
    /// Remove a user's credential for one mechanism.
    Delete {
        user: String,
        #[arg(long, default_value = "SCRAM-SHA-512", value_parser = mechanism)]
        mechanism: Mechanism,
    },
}

#[derive(Serialize)]
struct Credential {
    user: String,
    mechanism: String,
    iterations: i32,
}

pub async fn run(opts: &Options, command: Command) -> anyhow::Result<Outcome> {
    let mut client = opts.client().await?;
    let conn = client.any();
    match command {
        Command::SetPassword { user, mechanism, iterations } => {
            let mut password = String::new();
            std::io::stdin().lock().read_line(&mut password)?;
            let password = password.trim_end_matches(['\r', '\n']);
            anyhow::ensure!(!password.is_empty(), "no password on stdin");
            conn.upsert_scram_credential(&user, mechanism, password, iterations).await?;
            println!("{} credential of {user} set", mechanism.name());
        }
        Command::Describe { user } => {
            let found = conn.describe_scram_credentials(&user).await?;
            let rows: Vec<Credential> = found
                .into_iter()
                .map(|c| Credential { user: user.clone(), mechanism: c.mechanism, iterations: c.iterations })
                .collect();
            if opts.json() {
                print!("{}", table::json(&rows));
            } else {
                let cells: Vec<Vec<String>> =
                    rows.iter().map(|c| vec![c.user.clone(), c.mechanism.clone(), c.iterations.to_string()]).collect();
                print!("{}", table::render(&["USER", "MECHANISM", "ITERATIONS"], &cells));
            }
        }
        Command::Delete { user, mechanism } => {
            conn.delete_scram_credential(&user, mechanism).await?;
            println!("{} credential of {user} removed", mechanism.name());
        }
    }
    Ok(Outcome::Ok)
}
