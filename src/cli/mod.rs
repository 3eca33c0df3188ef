//! Commands besides `serve` and `migrate` that need the library: [`token`]
//! prints a signed token. Argument parsing itself lives in `main.rs`.

pub mod token;
