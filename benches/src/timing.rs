//! An equivalent of criterion, small enough to compile in seconds: warm-up,
//! a calibrated batch size, several samples, median and spread.
//!
//! Time is this thread's CPU time (`CLOCK_THREAD_CPUTIME_ID`), not wall
//! time: the benchmarks run on shared machines (CI, a 2-core VM with other
//! jobs) where wall time counts other processes' time slices. Everything
//! measured runs on the calling thread (wasmtime runs wasm on the caller's
//! thread; the harness's epoch ticker thread is not counted).

/// This thread's CPU time, ns.
pub fn thread_cpu_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime only writes the timespec we pass.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    if rc != 0 {
        return 0;
    }
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// How much to measure.
#[derive(Debug, Clone, Copy)]
pub struct Timing {
    /// Samples per figure (the median is reported).
    pub samples: usize,
    /// CPU time one sample should take, ns (the batch size is calibrated to it).
    pub sample_ns: u64,
    /// Warm-up CPU time before sampling, ns.
    pub warmup_ns: u64,
    /// Fixed batch size (no calibration, no warm-up): smoke runs use 1.
    pub fixed_batch: Option<u64>,
}

impl Timing {
    /// Full run: 11 samples of ~40 ms.
    pub fn full() -> Timing {
        Timing {
            samples: 11,
            sample_ns: 40_000_000,
            warmup_ns: 40_000_000,
            fixed_batch: None,
        }
    }
    /// Quick run: 5 samples of ~10 ms.
    pub fn quick() -> Timing {
        Timing {
            samples: 5,
            sample_ns: 10_000_000,
            warmup_ns: 5_000_000,
            fixed_batch: None,
        }
    }
    /// Smoke run: every benchmark runs once (proves it works; figures meaningless).
    pub fn smoke() -> Timing {
        Timing {
            samples: 1,
            sample_ns: 0,
            warmup_ns: 0,
            fixed_batch: Some(1),
        }
    }
}

/// A measured figure: ns per operation.
#[derive(Debug, Clone, Default)]
pub struct Figure {
    /// Median over the samples.
    pub median: f64,
    /// Smallest sample.
    pub min: f64,
    /// Largest sample.
    pub max: f64,
    /// Operations per sample.
    pub batch: u64,
    /// Number of samples.
    pub samples: usize,
}

impl Figure {
    /// Half the min..max range relative to the median, in percent.
    pub fn spread_pct(&self) -> f64 {
        if self.median > 0.0 {
            50.0 * (self.max - self.min) / self.median
        } else {
            0.0
        }
    }
}

/// Median of `v` (sorted in place).
pub fn median(v: &mut [f64]) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    match v.len() {
        0 => 0.0,
        n if n % 2 == 1 => v[n / 2],
        n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}

/// Measures `op(n)`, which performs `n` operations, and returns ns of CPU
/// time per operation.
pub fn measure<F>(t: &Timing, mut op: F) -> Result<Figure, String>
where
    F: FnMut(u64) -> Result<(), String>,
{
    let batch = match t.fixed_batch {
        Some(b) => b,
        None => {
            // Warm up while calibrating: double the batch until one takes
            // at least 1/8 of a sample, for at least the warm-up time.
            let start = thread_cpu_ns();
            let mut n = 1u64;
            loop {
                let t0 = thread_cpu_ns();
                op(n)?;
                let dt = thread_cpu_ns().saturating_sub(t0).max(1);
                let spent = thread_cpu_ns().saturating_sub(start);
                if dt >= t.sample_ns / 8 && spent >= t.warmup_ns {
                    let per_op = dt as f64 / n as f64;
                    break ((t.sample_ns as f64 / per_op) as u64).max(1);
                }
                if dt < t.sample_ns / 8 {
                    n = n.saturating_mul(2);
                }
            }
        }
    };
    let mut v = Vec::with_capacity(t.samples);
    for _ in 0..t.samples.max(1) {
        let t0 = thread_cpu_ns();
        op(batch)?;
        v.push(thread_cpu_ns().saturating_sub(t0) as f64 / batch as f64);
    }
    let min = v.iter().copied().fold(f64::INFINITY, f64::min);
    let max = v.iter().copied().fold(0.0, f64::max);
    Ok(Figure {
        median: median(&mut v),
        min,
        max,
        batch,
        samples: v.len(),
    })
}

/// Runs `op` once per sample and returns the median ns (for operations too
/// slow to batch, like compiling a module).
pub fn measure_each<F>(samples: usize, mut op: F) -> Result<Figure, String>
where
    F: FnMut() -> Result<u64, String>,
{
    let mut v = Vec::new();
    for _ in 0..samples.max(1) {
        v.push(op()? as f64);
    }
    let min = v.iter().copied().fold(f64::INFINITY, f64::min);
    let max = v.iter().copied().fold(0.0, f64::max);
    Ok(Figure {
        median: median(&mut v),
        min,
        max,
        batch: 1,
        samples: v.len(),
    })
}
