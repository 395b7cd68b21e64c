//! Prints the test vectors of `docs/format.md` (run after a deliberate format change).
fn main() {
    for (name, value) in loggvakt_journal::vectors::vectors() {
        println!("{name}: {value}");
    }
}
