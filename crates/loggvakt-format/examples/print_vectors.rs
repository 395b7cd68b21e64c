//! Prints the test vectors of `docs/format.md` (run after a deliberate format change).

// A developer's tool, run by hand: it prints, and stops at the first error.
#![allow(clippy::print_stdout, clippy::print_stderr, clippy::unwrap_used, clippy::expect_used)]

fn main() {
    for (name, value) in loggvakt_format::vectors::vectors() {
        println!("{name}: {value}");
    }
}
