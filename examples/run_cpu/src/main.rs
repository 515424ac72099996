//! A minimal application that links only `secc-runtime`: loads an artifact, runs it on a
//! deterministic pseudo-random input of batch size 1 (or the size given), and prints a
//! checksum of each output and the latency.
//!
//! Usage: `run_cpu MODEL.bin [BATCH] [THREADS]`
use secc_runtime::{Model, Tensor};
use std::time::Instant;

fn main() {
    if let Err(e) = real_main() {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}

fn real_main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let path = args
        .get(1)
        .ok_or("usage: run_cpu MODEL.bin [BATCH] [THREADS]")?;
    let batch: usize = args.get(2).map(|s| s.parse()).transpose()?.unwrap_or(1);
    let threads: usize = args.get(3).map(|s| s.parse()).transpose()?.unwrap_or(2);
    let model = Model::load(path.as_ref())?;
    let mut session = model.session(threads)?;
    let m = model.manifest();
    let mut seed = 0x2545F4914F6CDD1Du64;
    let inputs: Vec<Tensor> = m
        .inputs
        .iter()
        .map(|io| {
            let shape: Vec<usize> = m.buffers[io.buffer as usize]
                .shape
                .iter()
                .map(|d| d.eval(&vec![batch as u64; m.symbols.len()]).unwrap_or(1) as usize)
                .collect();
            let n = shape.iter().product();
            let data = (0..n)
                .map(|_| {
                    seed ^= seed << 13;
                    seed ^= seed >> 7;
                    seed ^= seed << 17;
                    (seed >> 40) as f32 / (1u64 << 24) as f32 * 4.0 - 2.0
                })
                .collect();
            Tensor::new(shape, data)
        })
        .collect::<Result<_, _>>()?;
    let t = Instant::now();
    let outs = session.run(&inputs)?.to_vec();
    let first = t.elapsed();
    let stats = session.bench(&inputs, 5, 50)?;
    println!(
        "{}: {} SE block(s) fused, {} kernel(s)",
        m.model_name,
        m.se_blocks,
        m.kernels.len()
    );
    for (name, o) in model.output_names().iter().zip(&outs) {
        let sum: f64 = o.data.iter().map(|&v| v as f64).sum();
        println!("output {name}: shape {:?}, sum {sum:.6}", o.shape);
    }
    println!(
        "first run {:.1} us; median of 50: {:.1} us ({} threads)",
        first.as_secs_f64() * 1e6,
        stats.percentile(50.0),
        session.threads()
    );
    Ok(())
}
