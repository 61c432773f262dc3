//! Runs one input through a target natively: `replay TARGET FILE...`
//! (`scripts/fuzz.sh --replay FILE TARGET`). A panic shows the failure.

fn main() {
    let mut args = std::env::args().skip(1);
    let name = args.next().expect("usage: replay TARGET FILE...");
    let target = wasmesh_fuzz::target(&name).unwrap_or_else(|| {
        let names: Vec<&str> = wasmesh_fuzz::all().iter().map(|t| t.name).collect();
        panic!("unknown target {name}; targets: {names:?}")
    });
    for file in args {
        let data = std::fs::read(&file).expect("read the input");
        (target.run)(&data);
        println!("{name} {file}: ok ({} bytes)", data.len());
    }
}
