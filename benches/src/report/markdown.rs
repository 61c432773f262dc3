//! BENCHMARKS.md: the report's Markdown, written from the measured
//! [`Results`] (tables, targets met and missed, profiles, instruction counts).

use super::*;

impl Results {
    fn case(&self, id: &str) -> Option<&CaseResult> {
        self.cases.iter().find(|c| c.id == id)
    }
    fn scaled(&self, group: &str, n: usize) -> Option<&CaseResult> {
        self.scaling
            .iter()
            .find(|(g, k, _)| g == group && *k == n)
            .map(|(_, _, r)| r)
    }
    fn jwt_row(&self, alg: &str) -> Option<&(String, CaseResult, CaseResult)> {
        self.jwt.iter().find(|(a, _, _)| a == alg)
    }

    /// The throughput ratio (chain / empty) per connection count, from
    /// the Markdown rows of `scripts/bench-serve.sh --markdown`
    /// (`| <chain> | <conns> | rps | p50 | p99 | errors | 85% |`).
    pub fn serve_ratios(&self) -> Vec<(String, f64)> {
        let Some(out) = &self.serve_output else {
            return Vec::new();
        };
        out.lines()
            .filter_map(|l| {
                let cells: Vec<&str> = l
                    .trim()
                    .trim_matches('|')
                    .split('|')
                    .map(str::trim)
                    .collect();
                if cells.len() < 7 || cells[0] == "empty" || cells[0] == "chain" {
                    return None;
                }
                let conns = cells[1];
                conns.parse::<u32>().ok()?;
                let pct = cells[cells.len() - 1].strip_suffix('%')?.parse().ok()?;
                Some((conns.to_string(), pct))
            })
            .collect()
    }

    /// The issue's targets, each met or missed with its figure.
    pub fn targets(&self) -> Vec<Target> {
        let mut v = vec![
            added_target(
                "Cached JWT (example config, HS256 token in the cache)",
                5_000.0,
                self.case("jwt-authn"),
                "jwt-authn row of the per-filter table, wasm − empty",
            ),
            added_target(
                "RS256 cold (cache off: parse + verify every request) in wasm",
                100_000.0,
                self.jwt_row("RS256").map(|r| &r.1),
                "JWT table, cold column",
            ),
            added_target(
                "ES256 cold in wasm",
                300_000.0,
                self.jwt_row("ES256").map(|r| &r.1),
                "JWT table, cold column",
            ),
            added_target(
                "RBAC 100 policies × 5 rules",
                5_000.0,
                self.scaled("rbac", 100),
                "scaling table, rbac 100",
            ),
            added_target(
                "Router 50 routes (header + regex)",
                3_000.0,
                self.scaled("header-router", 50),
                "scaling table, header-router 50",
            ),
            added_target(
                "Fault injection, request matching no fault",
                2_000.0,
                self.case("fault-injection"),
                "fault-injection row of the per-filter table",
            ),
            added_target(
                "Metrics: standard + 3 user metrics × 6 labels",
                3_000.0,
                self.case("custom-metrics-3x6"),
                "custom-metrics-3x6 row of the per-filter table",
            ),
        ];
        for (i, alg) in [(1usize, "RS256"), (2, "ES256")] {
            if let Some(r) = self.crypto.iter().find(|r| r.alg == alg) {
                let mut how = format!(
                    "JWT table, cold column; the signature alone: {} in wasm",
                    r.wasm.as_ref().map_or("n/a".into(), |f| fmt_ns(f.median))
                );
                if let Some(f) = &r.wasm_no_epoch {
                    let _ = write!(how, " ({} without epoch checks)", fmt_ns(f.median));
                }
                let _ = write!(how, ", {} natively", fmt_ns(r.native.median));
                if let Some(u) = self.openssl.as_ref().and_then(|f| {
                    if alg == "RS256" {
                        f.rsa2048_verify_us
                    } else {
                        f.ecdsap256_verify_us
                    }
                }) {
                    let _ = write!(how, ", OpenSSL {}", fmt_ns(u * 1e3));
                }
                v[i].how = how;
            }
        }
        let ratios = self.serve_ratios();
        let min = ratios.iter().map(|(_, p)| *p).fold(f64::INFINITY, f64::min);
        v.push(Target {
            what: "Full chain throughput vs empty chain (wasmesh serve, wrk)".into(),
            limit: "≥ 70%".into(),
            figure: (!ratios.is_empty()).then(|| {
                ratios
                    .iter()
                    .map(|(c, p)| format!("{p:.1}% at {c} conn."))
                    .collect::<Vec<_>>()
                    .join(", ")
            }),
            met: (!ratios.is_empty()).then_some(min >= 70.0),
            how: "data plane section".into(),
        });
        v
    }

    /// The Markdown report.
    pub fn markdown(&self) -> String {
        let mut o = String::new();
        let m = &self.machine;
        let _ = writeln!(o, "# Benchmarks\n");
        let _ = writeln!(
            o,
            "Generated by `{}` on {} in {:.0} s{}. Do not edit by hand: rerun the command.\n",
            self.command,
            m.date,
            self.seconds,
            match self.mode {
                Mode::Full => "",
                Mode::Quick => " — **quick mode** (fewer, shorter samples; figures are rough)",
                Mode::Smoke => " — **smoke mode** (1 iteration; figures are meaningless)",
            }
        );
        let _ = writeln!(o, "| machine | |\n|---|---|");
        let _ = writeln!(o, "| CPU | {} |", m.cpu);
        let _ = writeln!(o, "| cores (`nproc`) | {} |", m.nproc);
        let _ = writeln!(o, "| kernel (`uname -r`) | {} |", m.kernel);
        let _ = writeln!(o, "| rustc | {} |", m.rustc);
        let _ = writeln!(o, "| load average (1, 5, 15 min) at start | {} |", m.load);
        let _ = writeln!(
            o,
            "| load average at the end of the timings | {} |",
            self.load_end
        );
        let _ = writeln!(
            o,
            "| wasm runtime | wasmtime 48 (Cranelift, epoch interruption), the harness's engine |"
        );
        o.push_str(
            "\n**How to read these figures.** The machine is a shared virtual machine (2 cores, \
             other jobs running), so wall-clock time is noisy. Every per-request figure is this \
             thread's CPU time (`CLOCK_THREAD_CPUTIME_ID`: wasmtime runs wasm on the calling \
             thread), the **median** of several samples after a warm-up, each sample a batch \
             calibrated to a fixed CPU time; `±` is half the min–max range of the samples over \
             the median. Comparisons (wasm vs native, chain vs empty chain) are measured in the \
             same process in the same run. *Harness* figures are requests through \
             `wasmesh`'s Proxy-Wasm host (the real release `.wasm` files, as Envoy would run \
             them), including the harness's own work (virtual upstream, header maps, stream \
             bookkeeping); **wasm − empty** subtracts the same requests through an empty chain \
             and is what a filter adds to a request — the figure the targets refer to. \
             *Native* is the same filter core (the crate's pure decision code) compiled for the \
             host and driven with the same requests: header map built from the request, \
             properties read, decision made, header edits applied, metrics sent to a counting \
             sink — everything except host calls. The ratio (wasm − empty) / native is the \
             price of wasm plus the Proxy-Wasm ABI.\n\n",
        );

        // Targets first.
        let _ = writeln!(o, "## Targets\n");
        let _ = writeln!(
            o,
            "| target | limit | measured | status | where |\n|---|---|---|---|---|"
        );
        for t in self.targets() {
            let status = match t.met {
                Some(true) => "**met**".to_string(),
                Some(false) => "**missed**".to_string(),
                None => "not measured".to_string(),
            };
            let _ = writeln!(
                o,
                "| {} | {} | {} | {} | {} |",
                t.what,
                t.limit,
                t.figure.clone().unwrap_or_else(|| match &self.serve_note {
                    Some(n) => n.clone(),
                    None => "—".into(),
                }),
                status,
                t.how
            );
        }
        o.push('\n');
        o.push_str(&instructions_markdown(
            &self.instructions,
            self.instructions_note.as_deref(),
        ));
        self.where_time_goes(&mut o);

        // Chain vs the sum of its parts.
        let singles = [
            "jwt-authn",
            "rbac",
            "header-router",
            "fault-injection",
            "custom-metrics",
        ];
        if let (Some(chain), true) = (
            self.case("full-chain"),
            singles.iter().all(|id| self.case(id).is_some()),
        ) {
            let sum: f64 = singles
                .iter()
                .filter_map(|id| self.case(id))
                .map(|c| c.added())
                .sum();
            let nsum: f64 = singles
                .iter()
                .filter_map(|id| self.case(id))
                .map(|c| c.native.median)
                .sum();
            let _ = writeln!(
                o,
                "The full chain adds {} per request in the harness, against {} for the five \
                 filters measured one at a time (natively: {} against {}). The chain's request \
                 is not the sum of the single-filter requests (the token is verified and its \
                 identity stored by jwt-authn and read by rbac, header-router and \
                 custom-metrics; jwt-authn adds output headers every later filter reads), and \
                 five VMs' code and data compete for the caches of a busy 2-core machine; the \
                 split of that difference has not been profiled.\n",
                fmt_ns(chain.added()),
                fmt_ns(sum),
                fmt_ns(chain.native.median),
                fmt_ns(nsum)
            );
        }

        // Per filter.
        let _ = writeln!(o, "## Per filter and full chain (harness vs native)\n");
        let _ = writeln!(
            o,
            "Representative configurations: the filters' examples (`examples/<filter>/config.json`) \
             and the issues' benchmark configurations. `floor` is the same number of pass-through \
             wasm plugins that do nothing (the harness's and ABI's fixed cost per plugin); \
             `own` = wasm − floor is what the filter's code and its host calls cost beyond that.\n"
        );
        let _ = writeln!(
            o,
            "| case | wasm (raw) | empty chain | **wasm − empty** | floor − empty | own (wasm − floor) | native | ratio | spread |\n|---|---:|---:|---:|---:|---:|---:|---:|---:|"
        );
        for c in &self.cases {
            let floor = c.floor.as_ref();
            let _ = writeln!(
                o,
                "| {} | {} | {} | **{}** | {} | {} | {} | {:.1}× | {} |",
                c.title,
                fmt_ns(c.wasm.median),
                fmt_ns(c.empty.median),
                fmt_ns(c.added()),
                floor.map_or("—".into(), |f| fmt_ns(f.median - c.empty.median)),
                floor.map_or("—".into(), |f| fmt_ns(c.wasm.median - f.median)),
                fmt_ns(c.native.median),
                c.ratio(),
                spread(&c.wasm)
            );
        }
        o.push('\n');

        // JWT.
        let _ = writeln!(o, "## JWT per algorithm\n");
        let _ = writeln!(
            o,
            "Through `jwt_authn.wasm` in the harness: one provider with an inline JWKS (RSA 2048, \
             P-256, Ed25519, HMAC keys); *cold* is with `cacheSize: 0`, so every request parses \
             the token and verifies its signature; *cached* is the default cache (the token is \
             verified once). Figures are wasm − empty chain; native is the same core natively.\n"
        );
        let _ = writeln!(
            o,
            "| algorithm | cold, wasm − empty | cold, native | ratio | cached, wasm − empty | cached, native |\n|---|---:|---:|---:|---:|---:|"
        );
        for (alg, cold, cached) in &self.jwt {
            let _ = writeln!(
                o,
                "| {alg} | {} | {} | {:.1}× | {} | {} |",
                fmt_ns(cold.added()),
                fmt_ns(cold.native.median),
                cold.ratio(),
                fmt_ns(cached.added()),
                fmt_ns(cached.native.median)
            );
        }
        let _ = writeln!(
            o,
            "\nSignature verification alone (`wasmesh-jose::verify`, key decoded once), inside \
             wasm (`test-plugins/jose-bench`, built in release; on the harness's engine \
             settings — Cranelift with epoch interruption, the checks that bound a callback's \
             run time — and on wasmtime's default settings without them) and natively, next to OpenSSL on this machine (`openssl speed -seconds 1 \
             rsa2048 ecdsap256`, its own optimised assembly):\n"
        );
        let _ = writeln!(
            o,
            "| algorithm | wasm (harness engine) | wasm, no epoch checks | native | wasm / native | OpenSSL verify |\n|---|---:|---:|---:|---:|---:|"
        );
        for r in &self.crypto {
            let ossl = self.openssl.as_ref().and_then(|f| match r.alg.as_str() {
                "RS256" | "PS256" => f.rsa2048_verify_us,
                "ES256" => f.ecdsap256_verify_us,
                _ => None,
            });
            let _ = writeln!(
                o,
                "| {} | {} | {} | {} | {} | {} |",
                r.alg,
                r.wasm
                    .as_ref()
                    .map_or("not measured".into(), |f| fmt_ns(f.median)),
                r.wasm_no_epoch
                    .as_ref()
                    .map_or("not measured".into(), |f| fmt_ns(f.median)),
                fmt_ns(r.native.median),
                r.wasm.as_ref().map_or("—".into(), |f| format!(
                    "{:.1}×",
                    f.median / r.native.median
                )),
                ossl.map_or("—".into(), |u| fmt_ns(u * 1e3)),
            );
        }
        if let Some(n) = &self.crypto_note {
            let _ = writeln!(o, "\nwasm column: {n}.");
        }
        match &self.openssl {
            Some(f) => {
                let _ = writeln!(o, "\n{}:\n\n```\n{}\n```\n", f.version, f.raw);
            }
            None => {
                let _ = writeln!(o, "\nOpenSSL: not measured.\n");
            }
        }

        // Scaling.
        let _ = writeln!(o, "## Scaling\n");
        let _ = writeln!(
            o,
            "Cost per request as the configuration grows (wasm − empty chain, and natively). \
             RBAC: n policies of 5 rules each (principals, IP blocks, hosts, methods, 3 paths, a \
             header condition); the request is allowed by the last rule of the last ALLOW policy. \
             Router: n routes, each a header match and a path regex; the request matches the \
             last. Metrics: the issue 7 configuration (3 user metrics × 6 labels) with n distinct \
             `x-tenant` values in turn, i.e. n label sets per metric.\n"
        );
        let _ = writeln!(
            o,
            "| filter | n | wasm − empty | native | ratio | marginal cost per unit of n since the previous row (wasm / native) |\n|---|---:|---:|---:|---:|---:|"
        );
        let mut prev: Option<(&str, usize, &CaseResult)> = None;
        for (g, n, r) in &self.scaling {
            let marginal = match prev {
                Some((pg, pn, pr)) if pg == g && *n > pn => {
                    let d = (*n - pn) as f64;
                    format!(
                        "{} / {}",
                        fmt_ns((r.added() - pr.added()) / d),
                        fmt_ns((r.native.median - pr.native.median) / d)
                    )
                }
                _ => "—".into(),
            };
            let _ = writeln!(
                o,
                "| {g} | {n} | {} | {} | {:.1}× | {marginal} |",
                fmt_ns(r.added()),
                fmt_ns(r.native.median),
                r.ratio(),
            );
            prev = Some((g.as_str(), *n, r));
        }
        o.push('\n');

        // Sizes.
        let _ = writeln!(o, "## `.wasm` sizes\n");
        let _ = writeln!(
            o,
            "The shipped artifacts are cargo's (`cargo build --release --target wasm32-wasip1`, \
             profile `release`: opt-level s, fat LTO, stripped). `wasm-opt -Oz` is shown for \
             information only; it is not applied to what ships.\n"
        );
        let _ = writeln!(
            o,
            "| artifact | size | budget | within budget | after `wasm-opt -Oz` |\n|---|---:|---:|---|---:|"
        );
        for s in &self.sizes {
            let _ = writeln!(
                o,
                "| {}.wasm | {:.1} KiB ({} B) | {} KiB | {} | {} |",
                s.name,
                s.bytes as f64 / 1024.0,
                s.bytes,
                s.budget_kib,
                if s.bytes <= s.budget_kib * 1024 {
                    "yes"
                } else {
                    "**no**"
                },
                s.wasm_opt.map_or("—".into(), |b| format!(
                    "{:.1} KiB ({:+.1}%)",
                    b as f64 / 1024.0,
                    100.0 * (b as f64 - s.bytes as f64) / s.bytes as f64
                ))
            );
        }
        if let Some(n) = &self.sizes_note {
            let _ = writeln!(o, "\n{n}.");
        }
        o.push('\n');

        // Start-up.
        let _ = writeln!(o, "## VM cold start\n");
        let _ = writeln!(
            o,
            "Per filter, example configuration. *Compile*: Cranelift compiling the module \
             without any cache (wall time, and CPU time of all compiler threads). *Cached*: the \
             harness's in-process module cache (what a second worker pays). *Deserialize*: \
             loading a precompiled module (what an on-disk compiled-code cache would cost). \
             *Instantiate*: instance creation and `_initialize`. *Configure*: root context, \
             `proxy_on_vm_start`, `proxy_on_configure` (config parsed and compiled). Medians.\n"
        );
        let _ = writeln!(
            o,
            "| module | compile (wall) | compile (CPU) | cached load | deserialize | instantiate | configure |\n|---|---:|---:|---:|---:|---:|---:|"
        );
        for s in &self.start {
            let _ = writeln!(
                o,
                "| {} | {} | {} | {} | {} | {} | {} |",
                s.name,
                fmt_ns(s.compile_wall.median),
                fmt_ns(s.compile_cpu.median),
                fmt_ns(s.cached_load.median),
                fmt_ns(s.deserialize.median),
                fmt_ns(s.instantiate.median),
                fmt_ns(s.configure.median)
            );
        }
        o.push('\n');

        // Memory.
        let _ = writeln!(o, "## Linear memory per VM\n");
        let _ = writeln!(
            o,
            "The full chain (one VM per filter), before and after {} requests of the \
             full-chain case.\n",
            self.memory_requests
        );
        let _ = writeln!(
            o,
            "| VM | after start | after {} requests |\n|---|---:|---:|",
            self.memory_requests
        );
        for r in &self.memory {
            let _ = writeln!(
                o,
                "| {} | {} KiB | {} KiB |",
                r.vm,
                r.before / 1024,
                r.after / 1024
            );
        }
        o.push('\n');

        // Data plane.
        let _ = writeln!(o, "## Local data plane (`wasmesh serve`)\n");
        match (&self.serve_output, &self.serve_note) {
            (Some(out), _) => {
                let _ = writeln!(
                    o,
                    "From `scripts/bench-serve.sh --markdown` (wrk on loopback; the proxy, wrk and \
                     the upstream share the machine's cores, so absolute figures are low — \
                     compare the rows; wall-clock throughput is the one figure here that is not \
                     CPU time):\n\n{}\n",
                    out.trim_end()
                );
            }
            (None, Some(n)) => {
                let _ = writeln!(o, "{n}.\n");
            }
            (None, None) => {
                let _ = writeln!(o, "Not measured.\n");
            }
        }
        o.push_str(&soak_section());
        o
    }

    /// For each missed target: the split of its time.
    fn where_time_goes(&self, o: &mut String) {
        let _ = writeln!(o, "### Where the time goes\n");
        let _ = writeln!(
            o,
            "For each filter case: what a request costs in the harness with no plugin (the \
             harness itself, not counted in any target), what the same number of pass-through \
             wasm plugins add (creating the stream contexts and calling every callback across \
             the ABI: the fixed price of being a wasm plugin in this host), what the filter's \
             own code and host calls add on top, and what the same decision code costs \
             natively.\n"
        );
        let _ = writeln!(
            o,
            "| case | harness alone | + pass-through plugins | + the filter's own work | native core | own / native |\n|---|---:|---:|---:|---:|---:|"
        );
        for c in &self.cases {
            let Some(f) = &c.floor else { continue };
            let own = c.wasm.median - f.median;
            let _ = writeln!(
                o,
                "| {} | {} | {} | {} | {} | {:.1}× |",
                c.id,
                fmt_ns(c.empty.median),
                fmt_ns(f.median - c.empty.median),
                fmt_ns(own),
                fmt_ns(c.native.median),
                own / c.native.median
            );
        }
        o.push('\n');
        if self.profiles.is_empty() {
            let _ = writeln!(
                o,
                "Callgrind breakdown: not run (needs valgrind; `scripts/bench.sh` runs it in full mode).\n"
            );
            return;
        }
        let _ = writeln!(
            o,
            "Callgrind (instruction counts, deterministic) of requests through the harness, \
             collected only inside the request loop. *Plugin callbacks* is everything under \
             the host's callback entry (`Vm::invoke`): the filter's wasm code (JIT-compiled, no \
             symbols) and the host functions it calls (header and property reads, header \
             edits, metrics, logs, copies across linear memory). The rest is the harness \
             itself (stream bookkeeping, the virtual upstream), which an Envoy deployment \
             replaces with its own. `:empty` is the same requests through an empty chain (the \
             harness alone); `:native` is the filter core natively (the whole count is the \
             decision code, no harness) — compare it with the wasm code column.\n"
        );
        let _ = writeln!(
            o,
            "| case | instructions / request | harness outside callbacks | plugin callbacks | of which wasm code | of which host functions |\n|---|---:|---:|---:|---:|---:|"
        );
        for p in &self.profiles {
            if p.callbacks <= 0.0 {
                let what = if p.case.ends_with(":native") {
                    "the native core (no harness)"
                } else {
                    "the harness alone (no plugin)"
                };
                let _ = writeln!(
                    o,
                    "| {} ({} requests) | {:.0} | {what} | — | — | — |",
                    p.case, p.requests, p.total
                );
                continue;
            }
            let pct = |x: f64| 100.0 * x / p.total;
            let _ = writeln!(
                o,
                "| {} ({} requests) | {:.0} | {:.0} ({:.0}%) | {:.0} ({:.0}%) | {:.0} ({:.0}%) | {:.0} ({:.0}%) |",
                p.case,
                p.requests,
                p.total,
                p.harness(),
                pct(p.harness()),
                p.callbacks,
                pct(p.callbacks),
                p.wasm,
                pct(p.wasm),
                p.host_calls(),
                pct(p.host_calls())
            );
        }
        o.push('\n');
        for p in self.profiles.iter().filter(|p| !p.case.contains(':')) {
            let find = |suffix: &str| {
                self.profiles
                    .iter()
                    .find(|q| q.case == format!("{}:{suffix}", p.case))
            };
            let mut line = format!(
                "* **{}**: {:.0} instructions per request in the wasm code",
                p.case, p.wasm
            );
            if let Some(n) = find("native") {
                let _ = write!(
                    line,
                    " against {:.0} for the same core natively ({:.1}×)",
                    n.total,
                    p.wasm / n.total
                );
            }
            let _ = write!(
                line,
                "; {:.0} in host functions the filter calls",
                p.host_calls()
            );
            if let Some(e) = find("empty") {
                let _ = write!(
                    line,
                    "; {:.0} more in the harness outside the callbacks than with an empty chain \
                     (stream contexts, callback dispatch)",
                    p.harness() - e.total
                );
            }
            line.push('.');
            let _ = writeln!(o, "{line}");
        }
        for p in self.profiles.iter().filter(|p| !p.case.contains(':')) {
            let _ = writeln!(
                o,
                "\nTop host-side functions by own instructions per request, {} (wasm code excluded):\n",
                p.case
            );
            let _ = writeln!(o, "| function | instructions / request |\n|---|---:|");
            for (f, c) in &p.top {
                let _ = writeln!(o, "| `{}` | {:.0} |", f.replace('|', "\\|"), c);
            }
        }
        o.push('\n');
    }
}

/// The soak figures: long runs (`scripts/soak.sh`, 1,000,000 requests and a
/// 10-minute `wasmesh serve` run) that this command does not repeat; their
/// last recorded results are copied from docs/hardening.md, headings one
/// level down, so BENCHMARKS.md has every figure the issues ask for.
pub(super) fn soak_section() -> String {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/hardening.md");
    let Ok(doc) = std::fs::read_to_string(path) else {
        return "## Soak\n\nNot recorded (docs/hardening.md missing).\n".to_string();
    };
    let Some(start) = doc.find("\n## Soak\n") else {
        return "## Soak\n\nNot recorded (no Soak section in docs/hardening.md).\n".to_string();
    };
    let body = &doc[start + 1..];
    let end = body[3..].find("\n## ").map_or(body.len(), |i| i + 4);
    let mut o = String::from(
        "## Soak (from `scripts/soak.sh`, recorded in docs/hardening.md)\n\n\
         These long runs are not repeated by this command; their last results are copied \
         here from docs/hardening.md.\n",
    );
    for line in body[..end].lines().skip(1) {
        if line.starts_with('#') {
            o.push('#');
        }
        o.push_str(line);
        o.push('\n');
    }
    o
}

/// Thousands separators: 12345.6 → "12,346".
pub fn fmt_count(v: f64) -> String {
    let n = v.round() as i64;
    let digits = n.unsigned_abs().to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    if n < 0 {
        format!("-{out}")
    } else {
        out
    }
}

/// The "Instructions per request" section: deterministic counts (callgrind)
/// and host calls by name, the figures issue 15's budgets are about.
pub fn instructions_markdown(
    rows: &[crate::profile::InstructionRow],
    note: Option<&str>,
) -> String {
    let mut o = String::new();
    let _ = writeln!(o, "## Instructions per request (deterministic)\n");
    let (a, b) = crate::profile::INSTRUCTION_RUNS;
    let _ = writeln!(
        o,
        "x86 instructions counted by callgrind inside the request loop only \
         (`valgrind --tool=callgrind --toggle-collect='wasmesh_benchmarks::harness::WasmChain::run' \
         target/host/wasmesh-benchmarks --run-case CASE N`), per request = (I(N={b}) − I(N={a})) / {}, \
         and a case's figure is `CASE` minus `CASE:empty` (the same requests through an empty \
         chain). Unlike the time figures these do not depend on the machine or its load \
         (within a few instructions: hash seeds), so they compare across machines and commits. \
         *before*: main at 8ed6b80 (issue 15), same method. The **pass-through plugin** row is \
         the host's fixed price per plugin, (`fault-injection:passthrough-4` − \
         `fault-injection:empty`) / 4, with `benches/wat/passthrough.wat` (exports the header, \
         log, done and delete callbacks, does nothing in them); proxy-wasm-cpp-host's is about \
         3,250. Host calls per request are counted by name with \
         `wasmesh-benchmarks --run-case CASE 100 --host-calls` (a counting shim on every import).\n",
        b - a
    );
    if rows.is_empty() {
        let _ = writeln!(
            o,
            "Not measured{}.\n",
            note.map(|n| format!(" ({n})")).unwrap_or_default()
        );
        return o;
    }
    let _ = writeln!(
        o,
        "| case | before | now | now / before | empty chain (harness alone) | host calls per request |\n|---|---:|---:|---:|---:|---:|"
    );
    for r in rows {
        let calls: f64 = r.host_calls.iter().map(|(_, c)| c).sum();
        let _ = writeln!(
            o,
            "| {} | {} | **{}** | {} | {} | {} |",
            r.case,
            r.before.map_or("—".into(), fmt_count),
            fmt_count(r.added),
            r.before
                .map_or("—".into(), |b| format!("{:.2}", r.added / b)),
            fmt_count(r.empty),
            if calls.fract() == 0.0 {
                format!("{calls:.0}")
            } else {
                format!("{calls:.1}")
            }
        );
    }
    let _ = writeln!(o, "\n### Host calls per request, by name\n");
    for r in rows {
        if r.host_calls.is_empty() {
            let _ = writeln!(o, "* **{}**: none", r.case);
            continue;
        }
        let list: Vec<String> = r
            .host_calls
            .iter()
            .map(|(n, c)| {
                let n = n.strip_prefix("env.").unwrap_or(n);
                if c.fract() == 0.0 {
                    format!("`{n}` {c:.0}")
                } else {
                    format!("`{n}` {c:.2}")
                }
            })
            .collect();
        let _ = writeln!(o, "* **{}**: {}", r.case, list.join(", "));
    }
    o.push('\n');
    o
}
