//! Weighted routing, statistically, through the real `header_router.wasm` in
//! the harness: 10,000 requests land within ±2 points of the weights; a
//! sticky key always lands on the same destination; a 90/10 → 80/20 change
//! moves about 10% of the keys, all of them towards the destination that
//! gained weight.
//!
//! The draws are reproducible: the harness's random sources take a fixed
//! seed, printed by every test (shown when one fails); `WASMESH_SEED=N`
//! replays a run.
//!
//! Needs the `.wasm` built first (`bash scripts/build-wasm.sh`).

use std::collections::HashMap;
use std::path::Path;
use wasmesh::scenario::model::RequestSpec;
use wasmesh::scenario::{RunOptions, Scenario, Session};

const N: usize = 10_000;

fn session(config: &str) -> Session {
    let yaml = format!(
        "chain:\n  - name: router\n    wasm: header_router\n    config: {config}\nrequests: []\n"
    );
    let mut s = Scenario::from_yaml_str(&yaml, Path::new(".")).expect("scenario");
    let seed = seed();
    // Shown with a failure (libtest prints a failed test's output).
    eprintln!(
        "seed {seed} (replay: WASMESH_SEED={seed} cargo test --profile host --workspace --test {})",
        module_path!()
    );
    s.spec.seed = Some(seed);
    Session::new(&s.spec, &s.base_dir, &RunOptions::default()).expect("chain starts")
}

/// A session with an explicit seed.
fn session_seeded(config: &str, seed: u64) -> Session {
    let yaml = format!(
        "seed: {seed}\nchain:\n  - name: router\n    wasm: header_router\n    config: {config}\nrequests: []\n"
    );
    let s = Scenario::from_yaml_str(&yaml, Path::new(".")).expect("scenario");
    Session::new(&s.spec, &s.base_dir, &RunOptions::default()).expect("chain starts")
}

/// The scenario's `seed:` decides the draws: the same seed replays the same
/// sequence of picks, another seed gives another sequence.
#[test]
fn the_same_seed_draws_the_same_routes() {
    const CONFIG: &str = r#"{"routes":[{"name":"split","route":[{"destination":"v1","weight":50},{"destination":"v2","weight":50}]}]}"#;
    let req = request("/reviews", &[]);
    let picks = |seed: u64| -> Vec<String> {
        let mut s = session_seeded(CONFIG, seed);
        (0..64).map(|_| route(&mut s, &req)).collect()
    };
    let a = picks(1);
    assert_eq!(a, picks(1), "seed 1 twice");
    assert_ne!(a, picks(2), "seeds 1 and 2 drew the same 64 picks");
}

/// The seed of the harness's random sources: fixed, so that every run draws
/// the same numbers; `WASMESH_SEED=N` replays or explores another.
fn seed() -> u64 {
    std::env::var("WASMESH_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20_261_207)
}

fn request(path: &str, headers: &[(&str, &str)]) -> RequestSpec {
    let mut r = RequestSpec {
        path: Some(path.to_string()),
        ..Default::default()
    };
    for (k, v) in headers {
        r.headers.insert((*k).into(), (*v).into());
    }
    r
}

/// Sends a request; returns the cluster the router chose.
fn route(s: &mut Session, req: &RequestSpec) -> String {
    let obs = s
        .request(None, req, Default::default(), None)
        .expect("request");
    obs.upstream_headers
        .as_ref()
        .and_then(|h| h.get_str("x-wasmesh-cluster"))
        .expect("the router set the cluster header")
}

fn metric(s: &Session, name: &str) -> i64 {
    s.host.metric(name).map_or(-1, |m| m.value)
}

fn share(count: usize, total: usize) -> f64 {
    100.0 * count as f64 / total as f64
}

#[test]
fn random_draws_follow_the_weights() {
    let mut s = session(
        r#"{"routes":[{"name":"canary","route":[{"destination":"v1","weight":70},{"destination":"v2","weight":20},{"destination":"v3","weight":10}]}]}"#,
    );
    let req = request("/reviews", &[]);
    let mut counts: HashMap<String, usize> = HashMap::new();
    for _ in 0..N {
        *counts.entry(route(&mut s, &req)).or_default() += 1;
    }
    for (dest, weight) in [("v1", 70.0), ("v2", 20.0), ("v3", 10.0)] {
        let got = share(counts.get(dest).copied().unwrap_or(0), N);
        eprintln!("random 70/20/10: {dest} {got:.2}%");
        assert!(
            (got - weight).abs() <= 2.0,
            "{dest}: {got:.2}% for weight {weight}% ({counts:?})"
        );
        // The per-destination counters agree with what the upstream saw.
        assert_eq!(
            metric(&s, &format!("header_router.route.canary.{dest}")),
            counts[dest] as i64
        );
    }
}

#[test]
fn relative_weights_need_not_sum_to_100() {
    let mut s = session(
        r#"{"routes":[{"name":"r","route":[{"destination":"a","weight":1},{"destination":"b","weight":3}]}]}"#,
    );
    let req = request("/", &[]);
    let b = (0..N).filter(|_| route(&mut s, &req) == "b").count();
    let got = share(b, N);
    assert!((got - 75.0).abs() <= 2.0, "{got:.2}%");
}

const STICKY_90_10: &str = r#"{"routes":[{"name":"canary","route":[{"destination":"v1","weight":90},{"destination":"v2","weight":10}],"stickyBy":{"header":"x-user-id"}}]}"#;
const STICKY_80_20: &str = r#"{"routes":[{"name":"canary","route":[{"destination":"v1","weight":80},{"destination":"v2","weight":20}],"stickyBy":{"header":"x-user-id"}}]}"#;

fn sticky_assignment(config: &str) -> Vec<String> {
    let mut s = session(config);
    (0..N)
        .map(|u| {
            route(
                &mut s,
                &request("/reviews", &[("x-user-id", &format!("user-{u}"))]),
            )
        })
        .collect()
}

#[test]
fn sticky_keys_always_land_on_the_same_destination() {
    let first = sticky_assignment(STICKY_90_10);
    let v2 = first.iter().filter(|d| *d == "v2").count();
    eprintln!("sticky 90/10: v2 got {:.2}% of {N} users", share(v2, N));
    assert!(
        (share(v2, N) - 10.0).abs() <= 2.0,
        "v2 got {:.2}% of the users",
        share(v2, N)
    );
    // The same users again, in another order, in a new VM (another worker,
    // or after a restart): every one lands where it did.
    let mut s = session(STICKY_90_10);
    for u in (0..N).rev().step_by(7) {
        let again = route(
            &mut s,
            &request("/reviews/42", &[("x-user-id", &format!("user-{u}"))]),
        );
        assert_eq!(again, first[u], "user-{u} moved");
    }
}

#[test]
fn shifting_90_10_to_80_20_moves_about_10_percent_of_users() {
    let before = sticky_assignment(STICKY_90_10);
    let after = sticky_assignment(STICKY_80_20);
    let moved_to_v2 = before
        .iter()
        .zip(&after)
        .filter(|(b, a)| *b == "v1" && *a == "v2")
        .count();
    let moved_to_v1 = before
        .iter()
        .zip(&after)
        .filter(|(b, a)| *b == "v2" && *a == "v1")
        .count();
    assert_eq!(
        moved_to_v1, 0,
        "no user may leave the destination that gained weight"
    );
    let moved = share(moved_to_v2, N);
    eprintln!("90/10 -> 80/20: {moved:.2}% of {N} users moved v1 -> v2, {moved_to_v1} moved back");
    assert!((moved - 10.0).abs() <= 2.0, "{moved:.2}% of users moved");
    let v2_after = after.iter().filter(|d| *d == "v2").count();
    assert!((share(v2_after, N) - 20.0).abs() <= 2.0);
}

#[test]
fn a_missing_sticky_key_is_a_random_draw() {
    let mut s = session(STICKY_90_10);
    let req = request("/reviews", &[]);
    let v2 = (0..N).filter(|_| route(&mut s, &req) == "v2").count();
    assert!((share(v2, N) - 10.0).abs() <= 2.0, "{:.2}%", share(v2, N));
}
