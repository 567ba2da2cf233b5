//! `agent.toml` parsing and validation: any text must give a config or errors
//! with a line and column inside the text, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pisek_agent::config::{Config, ConfigError};

fuzz_target!(|text: &str| {
    match Config::parse(text, "fuzz.toml") {
        Ok(config) => {
            // Validation reads the key file: point it at nothing.
            let mut config = config;
            config.wireguard.private_key_file = "/nonexistent/pisek-fuzz.key".into();
            let _ = config.validate();
        }
        Err(ConfigError::Syntax { line, column, .. }) => {
            assert!(line >= 1 && line <= text.lines().count().max(1) + 1);
            assert!(column >= 1);
        }
        Err(other) => panic!("parse returned {other}"),
    }
});
