//! The `quarry` command: a thin shell over the library (see `quarry::cli`).

fn main() {
    std::process::exit(quarry::cli::main());
}
