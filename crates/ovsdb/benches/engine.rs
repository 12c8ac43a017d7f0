//! `cargo bench -p ovsdb --bench engine`: the engine benchmark of `examples/bench.rs`
//! (single-insert `transact` rate at 0 and 100k Logical_Switch_Port rows, memory per row
//! against ovsdb-server), run through cargo's bench profile. Arguments after `--` are the
//! example's (`--rows N --txns M --no-server`).

#[path = "../examples/bench.rs"]
mod bench;

fn main() {
    bench::main();
}
