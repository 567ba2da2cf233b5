//! `pisek-cni`: run by the container runtime with `CNI_*` variables and the
//! network configuration on stdin; prints the result or the spec's error
//! object on stdout.

use pisek_cni::config::MAX_CONFIG_BYTES;
use pisek_cni::{CniError, codes, execute};
use std::io::{Read, Write};

fn main() {
    let mut stdin = Vec::new();
    // One byte more than accepted, so an oversized config is seen as such.
    let read = std::io::stdin()
        .take(MAX_CONFIG_BYTES as u64 + 1)
        .read_to_end(&mut stdin);
    let outcome = match read {
        Ok(_) => execute(&|k: &str| std::env::var(k).ok(), &stdin),
        Err(e) => pisek_cni::Outcome {
            stdout: CniError::new(codes::IO_FAILURE, "cannot read stdin")
                .details(e.to_string())
                .to_json("1.1.0"),
            exit_code: 1,
        },
    };
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(outcome.stdout.as_bytes());
    let _ = out.flush();
    std::process::exit(outcome.exit_code);
}
