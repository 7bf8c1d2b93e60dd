//! Heap bytes of compiling a flag file: what the snapshot keeps and the peak while parsing,
//! counted by a counting allocator (`cargo run --release --example compile_memory FILE`; make a
//! large FILE with `python3 benches/fixture.py FILE 10000`). The numbers are in docs/benchmarks.md.

fn main() {
    let Some(path) = std::env::args().nth(1) else {
        eprintln!("usage: compile_memory FILE");
        std::process::exit(2);
    };
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("cannot read {path}: {e}"));
    let mut kept = None;
    let compile = allocation_counter::measure(|| kept = Some(toggled::flags::compile(&text)));
    let mut parsed = None;
    let parse = allocation_counter::measure(|| parsed = Some(toggled::flags::compile::parse(&text)));
    let mib = |b: i64| b as f64 / 1_048_576.0;
    println!(
        "compile: snapshot keeps {:.1} MiB, peak {:.1} MiB, {} allocations",
        mib(compile.bytes_current),
        mib(compile.bytes_max as i64),
        compile.count_total
    );
    println!("parse only: {:.1} MiB, peak {:.1} MiB", mib(parse.bytes_current), mib(parse.bytes_max as i64));
}
